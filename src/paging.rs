//! Following a paged AWS listing to its end, and refusing one that does not end: a page cursor
//! (SCIM `nextCursor`, sso-admin and Organizations `NextToken`, IAM `Marker`) that comes back a
//! second time anywhere in the listing, or more pages than AWS's documented limits can fill, is
//! an error naming the operation, never the pages read so far taken for the whole listing (a
//! partial read taken for the truth makes the plan delete what it did not see). One helper,
//! [`all_pages`], serves every listing; the caps below say where their numbers come from.

use std::collections::HashSet;

/// SCIM listings, 100 per page: an identity store holds at most 100,000 groups (not raisable)
/// and 100,000 users (raisable), aws-sso.md §A.11. Ten times that is 1,000,000 items, 10,000
/// pages; a page may hold fewer than 100, hence the margin.
pub const SCIM_MAX_PAGES: usize = 10_000;

/// sso-admin listings, 100 per page: a principal can hold at most 3,000 accounts × 500
/// permission sets provisioned per account = 1,500,000 assignments (15,000 pages); an
/// (account, permission set) pair at most every user and group, 200,000 (2,000 pages).
pub const SSO_ADMIN_MAX_PAGES: usize = 20_000;

/// Organizations listings (at most 20 per page): an organization's accounts (raisable, AWS's
/// largest hold tens of thousands), 1,000 OUs per organization, 50 tags per account. 10,000
/// pages is 200,000 accounts.
pub const ORGANIZATIONS_MAX_PAGES: usize = 10_000;

/// IAM and CloudFormation listings of one role or one StackSet in one account: at most 20
/// managed policies per role, one stack instance per Region. 1,000 pages is far beyond both.
pub const SMALL_MAX_PAGES: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error(
        "{operation}: AWS repeated a page cursor (page {page} pointed back to an earlier one); the listing is not complete"
    )]
    Repeated {
        operation: &'static str,
        page: usize,
    },
    #[error(
        "{operation}: still more after {max_pages} pages, beyond what AWS's limits can hold; the listing is not complete"
    )]
    TooLong {
        operation: &'static str,
        max_pages: usize,
    },
}

/// Every item of a listing. `fetch(cursor)` reads one page (the first with `None`) and returns
/// its items and the next page's cursor; an absent or empty cursor ends the listing. A cursor
/// seen before, or a listing longer than `max_pages`, is a [`PagingError`].
pub async fn all_pages<T, E, F, Fut>(
    operation: &'static str,
    max_pages: usize,
    mut fetch: F,
) -> Result<Vec<T>, E>
where
    E: From<PagingError>,
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), E>>,
{
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = None;
    for page in 1..=max_pages {
        let (items, next) = fetch(cursor.take()).await?;
        out.extend(items);
        match next.filter(|c| !c.is_empty()) {
            None => return Ok(out),
            Some(next) if !seen.insert(next.clone()) => {
                return Err(PagingError::Repeated { operation, page }.into());
            }
            Some(next) => cursor = Some(next),
        }
    }
    Err(PagingError::TooLong {
        operation,
        max_pages,
    }
    .into())
}

impl From<PagingError> for crate::directory::DirectoryError {
    fn from(e: PagingError) -> Self {
        Self::Other(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing served from `pages`: each entry is (items, next cursor); page i is asked for
    /// with the cursor that page i-1 gave. Returns the items and the cursors asked for.
    async fn list(
        pages: &[(&[u32], Option<&str>)],
        max_pages: usize,
    ) -> (Result<Vec<u32>, PagingError>, Vec<Option<String>>) {
        let asked = std::sync::Mutex::new(Vec::new());
        let mut served = 0;
        let result = all_pages("ListThings", max_pages, |cursor| {
            asked.lock().unwrap().push(cursor);
            let (items, next) = pages[served.min(pages.len() - 1)];
            served += 1;
            std::future::ready(Ok::<_, PagingError>((
                items.to_vec(),
                next.map(str::to_owned),
            )))
        })
        .await;
        (result, asked.into_inner().unwrap())
    }

    #[tokio::test]
    async fn a_listing_is_followed_to_its_last_page() {
        let (items, asked) =
            list(&[(&[1, 2], Some("a")), (&[3], Some("b")), (&[4], None)], 10).await;
        assert_eq!(items.unwrap(), [1, 2, 3, 4]);
        assert_eq!(asked, [None, Some("a".into()), Some("b".into())]);
        let (items, _) = list(&[(&[1], Some(""))], 10).await;
        assert_eq!(items.unwrap(), [1], "an empty cursor ends the listing");
        let (items, _) = list(&[(&[], None)], 10).await;
        assert!(
            items.unwrap().is_empty(),
            "an empty listing is one empty page"
        );
    }

    #[tokio::test]
    async fn a_cursor_repeated_anywhere_is_an_error() {
        // The same page again at once …
        let (result, _) = list(&[(&[1], Some("a")), (&[2], Some("a"))], 10).await;
        let err = result.unwrap_err();
        assert_eq!(
            err,
            PagingError::Repeated {
                operation: "ListThings",
                page: 2
            }
        );
        assert!(
            err.to_string()
                .contains("ListThings: AWS repeated a page cursor"),
            "{err}"
        );
        assert!(err.to_string().contains("not complete"), "{err}");
        // … or a cycle back to an earlier page, which a check against the last cursor misses.
        let (result, asked) = list(
            &[
                (&[1], Some("a")),
                (&[2], Some("b")),
                (&[3], Some("c")),
                (&[4], Some("a")),
            ],
            10,
        )
        .await;
        assert_eq!(
            result.unwrap_err(),
            PagingError::Repeated {
                operation: "ListThings",
                page: 4
            }
        );
        assert_eq!(asked.len(), 4, "no page is read twice");
    }

    #[tokio::test]
    async fn a_listing_past_the_cap_is_an_error() {
        let (result, asked) = list(
            &[(&[1], Some("a")), (&[2], Some("b")), (&[3], Some("c"))],
            2,
        )
        .await;
        assert_eq!(
            result.unwrap_err(),
            PagingError::TooLong {
                operation: "ListThings",
                max_pages: 2
            }
        );
        assert_eq!(asked.len(), 2);
        let (result, _) = list(&[(&[1], Some("a")), (&[2], None)], 2).await;
        assert_eq!(result.unwrap(), [1, 2], "exactly the cap is fine");
    }

    #[tokio::test]
    async fn a_failed_page_is_the_listing_error() {
        let result: Result<Vec<u32>, PagingError> = all_pages("ListThings", 10, |cursor| {
            std::future::ready(match cursor {
                None => Ok((vec![1], Some("a".to_owned()))),
                Some(_) => Err(PagingError::TooLong {
                    operation: "page two",
                    max_pages: 0,
                }),
            })
        })
        .await;
        assert!(result.unwrap_err().to_string().starts_with("page two"));
    }
}
