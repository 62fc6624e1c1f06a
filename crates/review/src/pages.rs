//! The templates, compiled into the binary and rendered with minijinja (HTML-escaped: every
//! template's name ends in `.html`).

use std::sync::OnceLock;

use axum::response::Html;
use minijinja::Environment;

use crate::ReviewError;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("queue.html", include_str!("../templates/queue.html")),
    ("case.html", include_str!("../templates/case.html")),
    ("settings.html", include_str!("../templates/settings.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    ("error.html", include_str!("../templates/error.html")),
];

/// The stylesheet.
pub(crate) const CSS: &str = include_str!("../static/review.css");

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // The templates are part of the binary; one that does not parse is a build bug
            // that the tests catch (every page is rendered by them).
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a review template does not parse");
            }
        }
        env
    })
}

/// Renders template `name` with `ctx`.
pub(crate) fn render(name: &str, ctx: minijinja::Value) -> Result<Html<String>, ReviewError> {
    let template = env().get_template(name).map_err(ReviewError::internal)?;
    template
        .render(ctx)
        .map(Html)
        .map_err(ReviewError::internal)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let mut env = minijinja::Environment::new();
        for (name, source) in super::TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
