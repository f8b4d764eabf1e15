pub mod meshstack_fixture;
