//! `helper`: the verbs the runner runs inside the job's helper container (archives, cache,
//! artifact transfers). See [`crate::helper`].

use crate::commands::{CommandError, Globals};
use crate::helper::cli::{self, HelperError};

/// Runs `helper VERB ...`; a wrong command line exits 2, a failed verb 1.
pub fn run(_globals: &Globals, args: &mut lexopt::Parser) -> Result<(), CommandError> {
    cli::run(args).map_err(|err| match err {
        HelperError::Usage(_) | HelperError::MissingVerb | HelperError::UnknownVerb(_) => {
            CommandError::Usage(err.to_string())
        }
        HelperError::MissingOption { .. } => CommandError::Usage(err.to_string()),
        other => CommandError::Failed(Box::new(other)),
    })
}
