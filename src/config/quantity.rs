//! Kubernetes quantities (`500m`, `1.5`, `1Gi`, `129e6`): parse, compare, print.

/// A parsed quantity. It keeps the text as written (what goes into the manifest) and an exact
/// value for comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    text: String,
}

impl Quantity {
    /// The quantity as written in the config file.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

// TODO: stand-in so the manifest tests can build resources before `Quantity::parse` exists;
// it checks nothing. Replace its uses with `Quantity::parse` and remove it when both meet.
impl Quantity {
    #[doc(hidden)]
    pub fn from_text_unchecked(text: &str) -> Quantity {
        Quantity {
            text: text.to_string(),
        }
    }
}
