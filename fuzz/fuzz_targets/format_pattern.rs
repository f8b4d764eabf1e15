//! The Java `String.format` subset: any pattern compiles or is refused, and renders.
#![no_main]

use aws_replicator::format::Pattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (&str, u8)| {
    let (source, arity) = data;
    let arity = usize::from(arity % 6);
    if let Ok(pattern) = Pattern::compile(source, arity) {
        let args: Vec<String> = (0..arity).map(|i| format!("a{i}")).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = pattern.render(&args);
    }
});
