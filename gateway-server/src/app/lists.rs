//! Lists: the page a request asks for and the one `List<T>` shape every
//! list answers with (`{"object": "list", "data": [...]}`, plus `has_more`
//! and `next_cursor` when the list is paged).

use serde::Serialize;

use crate::domain::error::ApiError;

/// The most items one page holds.
pub(crate) const MAX_LIMIT: u32 = 100;

/// Items per page when the request names no `limit`.
pub(crate) const DEFAULT_LIMIT: u32 = 20;

/// A validated page request: `limit` in `1..=MAX_LIMIT`, and the id of the
/// last item of the previous page, if any (checked only to be a plausible id:
/// the use case looks it up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub(crate) limit: u32,
    pub(crate) cursor: Option<String>,
}

impl PageRequest {
    /// How many rows to read: one more than the page, to learn whether more follow.
    pub(crate) fn fetch(&self) -> u32 {
        self.limit + 1
    }

    /// The sequence number of the row the cursor names (`seq_of` looks it
    /// up among the merchant's rows); none without a cursor, 400 naming
    /// `cursor` when it names no row of the merchant.
    pub(crate) async fn cursor_seq<F, Fut>(&self, seq_of: F) -> Result<Option<i64>, ApiError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<Option<i64>, ApiError>>,
    {
        let Some(cursor) = self.cursor.clone() else {
            return Ok(None);
        };
        match seq_of(cursor).await? {
            Some(seq) => Ok(Some(seq)),
            None => Err(ApiError::invalid_param("cursor", "unknown cursor")),
        }
    }
}

/// Whether more items follow this page, and where the next one starts.
#[derive(Debug, Serialize)]
pub(crate) struct PageInfo {
    has_more: bool,
    /// Pass as `cursor` to get the next page.
    next_cursor: Option<String>,
}

/// A list of `T` as the API answers it.
#[derive(Debug, Serialize)]
pub(crate) struct List<T> {
    object: &'static str,
    data: Vec<T>,
    #[serde(flatten)]
    page: Option<PageInfo>,
}

impl<T> List<T> {
    /// Every item at once, unpaged.
    pub(crate) fn all(data: Vec<T>) -> Self {
        List {
            object: "list",
            data,
            page: None,
        }
    }
}

/// One page of rows, read with [`PageRequest::fetch`] and cut to its limit.
#[derive(Debug)]
pub(crate) struct Page<R> {
    pub(crate) rows: Vec<R>,
    has_more: bool,
}

impl<R> Page<R> {
    /// At most `request.limit` of `rows`, remembering whether more were read.
    pub(crate) fn cut(mut rows: Vec<R>, request: &PageRequest) -> Self {
        let limit = request.limit as usize;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        Page { rows, has_more }
    }

    /// The page as a list of views; the next cursor is the id (`id_of`) of
    /// the last row when more follow.
    pub(crate) fn list<'a, T>(&'a self, id_of: impl Fn(&R) -> &str, view: impl FnMut(&'a R) -> T) -> List<T> {
        let next_cursor = if self.has_more {
            self.rows.last().map(|row| id_of(row).to_owned())
        } else {
            None
        };
        List {
            object: "list",
            data: self.rows.iter().map(view).collect(),
            page: Some(PageInfo {
                has_more: self.has_more,
                next_cursor,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_at_the_limit_and_name_the_next_cursor() {
        let page = PageRequest {
            limit: 2,
            cursor: None,
        };
        let rows = Page::cut(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()], &page);
        let list = rows.list(|r| r.as_str(), |r| r.clone());
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            serde_json::json!({"object": "list", "data": ["a", "b"], "has_more": true, "next_cursor": "b"})
        );
        let rest = Page::cut(vec!["c".to_owned()], &page);
        let last = rest.list(|r| r.as_str(), |r| r.clone());
        assert_eq!(
            serde_json::to_string(&last).unwrap(),
            r#"{"object":"list","data":["c"],"has_more":false,"next_cursor":null}"#
        );
        assert_eq!(
            serde_json::to_string(&List::all(vec![1, 2])).unwrap(),
            r#"{"object":"list","data":[1,2]}"#
        );
    }
}
