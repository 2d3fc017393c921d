//! Authentication (bearer tokens, client certificates) and a small RBAC-like authoriser.

use std::sync::{Mutex, MutexGuard};

use crate::status::ApiError;

/// The user name of a request when the simulator runs without authentication.
pub const ANONYMOUS: &str = "system:anonymous";

/// One permission: verbs on resources in namespaces; `*` matches anything, an empty
/// namespace list means every namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Namespaces the rule covers (empty: all).
    pub namespaces: Vec<String>,
    /// Resources, e.g. `pods`, `pods/exec`, `secrets`, or `*`.
    pub resources: Vec<String>,
    /// Verbs, e.g. `get`, `list`, `watch`, `create`, `delete`, or `*`.
    pub verbs: Vec<String>,
}

impl Rule {
    /// A rule from string slices, for tests.
    pub fn new(namespaces: &[&str], resources: &[&str], verbs: &[&str]) -> Self {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        Rule {
            namespaces: owned(namespaces),
            resources: owned(resources),
            verbs: owned(verbs),
        }
    }

    fn allows(&self, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        let ns_ok =
            self.namespaces.is_empty() || namespace.is_some_and(|ns| any(&self.namespaces, ns));
        ns_ok && any(&self.resources, resource) && any(&self.verbs, verb)
    }
}

/// A bearer token, the user it stands for and what that user may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// The token as sent after `Bearer `.
    pub token: String,
    /// The user name, e.g. `system:serviceaccount:ci:runner`.
    pub user: String,
    /// Permissions; `None` allows everything.
    pub rules: Option<Vec<Rule>>,
}

impl TokenSpec {
    /// A token whose user may do everything.
    pub fn admin(token: &str, user: &str) -> Self {
        TokenSpec {
            token: token.to_string(),
            user: user.to_string(),
            rules: None,
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name.
    pub user: String,
    /// Permissions; `None` allows everything.
    pub rules: Option<Vec<Rule>>,
}

/// The authenticator and authoriser.
#[derive(Debug)]
pub struct Auth {
    tokens: Mutex<Vec<TokenSpec>>,
    required: bool,
}

impl Auth {
    /// Auth with these tokens; when `required` is false every request is anonymous and allowed.
    pub fn new(tokens: Vec<TokenSpec>, required: bool) -> Self {
        Auth {
            tokens: Mutex::new(tokens),
            required,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<TokenSpec>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds who sent a request: a verified client certificate's CN, or a known bearer token.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        cert_user: Option<&str>,
    ) -> Result<Identity, ApiError> {
        if let Some(user) = cert_user {
            return Ok(Identity {
                user: user.to_string(),
                rules: None,
            });
        }
        let bearer = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(token) = bearer {
            let tokens = self.lock();
            if let Some(spec) = tokens.iter().find(|t| t.token == token) {
                return Ok(Identity {
                    user: spec.user.clone(),
                    rules: spec.rules.clone(),
                });
            }
            return Err(ApiError::unauthorized());
        }
        match self.required {
            true => Err(ApiError::unauthorized()),
            false => Ok(Identity {
                user: ANONYMOUS.to_string(),
                rules: None,
            }),
        }
    }

    /// Replaces a token: the old one is refused from now on, the new one has its rights.
    pub fn rotate(&self, old: &str, new: &str) -> bool {
        let mut tokens = self.lock();
        match tokens.iter_mut().find(|t| t.token == old) {
            Some(spec) => {
                spec.token = new.to_string();
                true
            }
            None => false,
        }
    }

    /// Adds a token.
    pub fn add(&self, spec: TokenSpec) {
        self.lock().push(spec);
    }
}

impl Identity {
    /// Checks one verb; the error is the 403 the API server words.
    pub fn authorize(
        &self,
        verb: &str,
        resource: &str,
        name: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(rules) = &self.rules else {
            return Ok(());
        };
        match rules.iter().any(|r| r.allows(verb, resource, namespace)) {
            true => Ok(()),
            false => Err(ApiError::forbidden(
                &self.user, verb, resource, name, namespace,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> TokenSpec {
        TokenSpec {
            token: "t1".into(),
            user: "system:serviceaccount:ci:runner".into(),
            rules: Some(vec![Rule::new(&["ci"], &["pods"], &["get", "create"])]),
        }
    }

    #[test]
    fn unknown_or_rotated_tokens_are_unauthorized() {
        let auth = Auth::new(vec![runner()], true);
        assert!(auth.authenticate(Some("Bearer t1"), None).is_ok());
        assert_eq!(
            auth.authenticate(Some("Bearer nope"), None)
                .unwrap_err()
                .code,
            401
        );
        assert_eq!(auth.authenticate(None, None).unwrap_err().code, 401);
        assert!(auth.rotate("t1", "t2"));
        assert_eq!(
            auth.authenticate(Some("Bearer t1"), None).unwrap_err().code,
            401
        );
        assert!(auth.authenticate(Some("Bearer t2"), None).is_ok());
    }

    #[test]
    fn forbidden_names_user_verb_resource_and_namespace() {
        let auth = Auth::new(vec![runner()], true);
        let who = auth.authenticate(Some("Bearer t1"), None).unwrap();
        assert!(who.authorize("create", "pods", None, Some("ci")).is_ok());
        let e = who
            .authorize("create", "pods", None, Some("other"))
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.status["message"],
            "pods is forbidden: User \"system:serviceaccount:ci:runner\" cannot create resource \
             \"pods\" in API group \"\" in the namespace \"other\""
        );
        let e = who
            .authorize("delete", "pods", Some("p"), Some("ci"))
            .unwrap_err();
        assert!(e.status["message"]
            .as_str()
            .unwrap()
            .starts_with("pods \"p\" is forbidden"));
    }
}
