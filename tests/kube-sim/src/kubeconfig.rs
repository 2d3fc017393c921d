//! A kubeconfig for the simulator, in the plain YAML subset every reader takes.

use std::path::{Path, PathBuf};

use crate::sim::Credentials;

/// Renders a kubeconfig with one cluster, one user and one current context (`kube-sim`).
pub fn render(
    server: &str,
    ca: Option<&Path>,
    credentials: &Credentials,
    client_cert: Option<(PathBuf, PathBuf)>,
    namespace: &str,
) -> String {
    let quote = |text: &str| serde_json::Value::String(text.to_string()).to_string();
    let path = |p: &Path| quote(&p.display().to_string());
    let mut out =
        String::from("apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n");
    out.push_str(&format!("    server: {}\n", quote(server)));
    if let Some(ca) = ca {
        out.push_str(&format!("    certificate-authority: {}\n", path(ca)));
    }
    out.push_str("users:\n- name: kube-sim\n  user:");
    match (credentials, client_cert) {
        (Credentials::Token(token), _) => out.push_str(&format!("\n    token: {}\n", quote(token))),
        (Credentials::ClientCert, Some((cert, key))) => {
            out.push_str(&format!("\n    client-certificate: {}\n", path(&cert)));
            out.push_str(&format!("    client-key: {}\n", path(&key)));
        }
        _ => out.push_str(" {}\n"),
    }
    out.push_str(
        "contexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim\n",
    );
    out.push_str(&format!(
        "    namespace: {}\ncurrent-context: kube-sim\n",
        quote(namespace)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_server_ca_token_and_namespace() {
        let text = render(
            "https://127.0.0.1:1",
            Some(Path::new("/t/ca.crt")),
            &Credentials::Token("abc".into()),
            None,
            "ci",
        );
        assert!(text.contains("    server: \"https://127.0.0.1:1\"\n"));
        assert!(text.contains("certificate-authority: \"/t/ca.crt\""));
        assert!(text.contains("    token: \"abc\"\n"));
        assert!(text.contains("namespace: \"ci\""));
        assert!(text.ends_with("current-context: kube-sim\n"));
    }
}
