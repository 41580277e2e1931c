//! The page a browser shows when it comes back to `credsync login`'s loopback listener: the
//! whole HTTP answer, head and body, as one string (the listener sends it in one write).
//!
//! Pure: [`response`] turns what the callback told ([`Answer`]) and the command that signs in
//! again into bytes. The page is self-contained: inline CSS, no script, no image, no font, no
//! link to anything; the `Content-Security-Policy` header forbids every other resource, so a
//! page that loads nothing cannot leak the callback's URL (with its code) anywhere.
//!
//! What came in the request (the authorize endpoint's `error` and `error_description`, both
//! attacker-controlled: any page can send the browser to this listener) is HTML-escaped
//! ([`crate::markup::escape`]) and cut short before it is shown. A failed sign-in says what happened and the
//! command to run, as the AWS CLI's page says what failed.

use super::callback::Answer;
use crate::markup::escape;

/// The longest `error` and `error_description` shown, in characters.
const MAX_SHOWN: usize = 300;

/// The whole HTTP/1.1 answer to a callback request: status line, headers and page.
pub(crate) fn response(answer: &Answer, retry_command: &str) -> String {
    let (status, page) = page(answer, retry_command);
    format!(
        "HTTP/1.1 {status}\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
         X-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\n\
         Cache-Control: no-store\r\n\
         Connection: close\r\n\r\n{page}",
        page.len()
    )
}

/// The status line's code and reason, and the HTML page, for `answer`.
fn page(answer: &Answer, retry_command: &str) -> (&'static str, String) {
    let run_again = |lead: &str| {
        format!(
            "<p>{lead}</p>\n<pre><code>{}</code></pre>\n",
            escape(retry_command)
        )
    };
    match answer {
        Answer::Code(_) => (
            "200 OK",
            html(
                Look::Done,
                "Signed in",
                "<p>credsync has the answer from AWS and finishes the sign-in in your terminal. \
                 You can close this tab.</p>\n",
            ),
        ),
        Answer::Denied { error, description } => {
            let mut body = format!(
                "<p>AWS did not sign you in. The sign-in page answered with the error \
                 <code>{}</code>.</p>\n",
                escape(&cut(error))
            );
            if let Some(d) = description.as_deref().filter(|d| !d.trim().is_empty()) {
                body.push_str(&format!("<p class=\"said\">{}</p>\n", escape(&cut(d))));
            }
            body.push_str(&run_again(
                "Nothing was saved. To try again, run this in your terminal:",
            ));
            (
                "400 Bad Request",
                html(Look::Failed, "Sign-in failed", &body),
            )
        }
        Answer::StateMismatch => (
            "400 Bad Request",
            html(
                Look::Failed,
                "Sign-in not used",
                &format!(
                    "<p>This page belongs to another sign-in than the one in progress (an old \
                     tab, or a link that did not come from AWS), so credsync did not use it and \
                     stopped. Nothing was saved.</p>\n{}",
                    run_again("To sign in, run this in your terminal:")
                ),
            ),
        ),
        Answer::Malformed => (
            "400 Bad Request",
            html(
                Look::Failed,
                "Sign-in failed",
                &format!(
                    "<p>The browser came back without an authorization code, so there is \
                     nothing to sign in with. Nothing was saved.</p>\n{}",
                    run_again("To try again, run this in your terminal:")
                ),
            ),
        ),
        Answer::NotCallback => (
            "404 Not Found",
            html(
                Look::Failed,
                "Not found",
                "<p>This address only answers the sign-in of <code>credsync login</code>.</p>\n",
            ),
        ),
    }
}

/// The mark and colours of a page.
#[derive(Clone, Copy)]
enum Look {
    Done,
    Failed,
}

/// Inline, so the page needs nothing else; light and dark, following the system.
const CSS: &str = "\
:root{color-scheme:light dark;--bg:#f4f5f7;--card:#fff;--text:#16191f;--muted:#545b64;\
--line:#d5dbdb;--ok:#1d8102;--bad:#d13212;--code:#eef0f2}\
@media (prefers-color-scheme:dark){:root{--bg:#0f1419;--card:#1a2029;--text:#e9ebed;\
--muted:#aab7b8;--line:#414d5c;--ok:#29ad32;--bad:#ff5d64;--code:#232b37}}\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
padding:24px;background:var(--bg);color:var(--text);\
font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,Helvetica,Arial,sans-serif}\
main{max-width:560px;width:100%;background:var(--card);border:1px solid var(--line);\
border-top:4px solid var(--accent);border-radius:12px;padding:24px 28px}\
.done{--accent:var(--ok)}.failed{--accent:var(--bad)}\
.brand{margin:0 0 12px;color:var(--muted);font-size:13px;letter-spacing:.04em}\
h1{display:flex;align-items:center;gap:10px;margin:0 0 12px;font-size:22px}\
.mark{display:inline-flex;align-items:center;justify-content:center;width:28px;height:28px;\
border-radius:50%;background:var(--accent);color:#fff;font-size:16px;flex:none}\
p{margin:0 0 12px}\
.said{padding:8px 12px;border-left:3px solid var(--line);color:var(--muted);\
overflow-wrap:anywhere}\
code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;\
overflow-wrap:anywhere}\
pre{margin:0;padding:10px 12px;background:var(--code);border-radius:8px;overflow-x:auto}\
";

/// The page around `body` (HTML already escaped where it must be).
fn html(look: Look, title: &str, body: &str) -> String {
    let (class, mark) = match look {
        Look::Done => ("done", "&#10003;"),
        Look::Failed => ("failed", "!"),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} - credsync</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <main class=\"{class}\">\n<p class=\"brand\">credsync login</p>\n\
         <h1><span class=\"mark\" aria-hidden=\"true\">{mark}</span>{title}</h1>\n{body}</main>\n\
         </body>\n</html>\n"
    )
}

/// At most [`MAX_SHOWN`] characters of `s`, with `…` when cut.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(response: &str) -> (&str, &str) {
        response.split_once("\r\n\r\n").expect("a head and a body")
    }

    #[test]
    fn every_page_is_one_self_contained_html_answer() {
        let answers = [
            Answer::Code("c".into()),
            Answer::Denied {
                error: "access_denied".into(),
                description: Some("The user said no".into()),
            },
            Answer::StateMismatch,
            Answer::Malformed,
            Answer::NotCallback,
        ];
        for answer in &answers {
            let r = response(answer, "credsync login --sso-session corp");
            let (head, body) = split(&r);
            assert!(
                head.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"),
                "{head}"
            );
            assert!(
                head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
                "{head}"
            );
            assert!(head.contains("default-src 'none'"), "{head}");
            assert!(body.starts_with("<!DOCTYPE html>") && body.ends_with("</html>\n"));
            // Nothing to fetch: no script, no link, no image, no URL at all.
            for banned in ["<script", "<link", "<img", "src=", "href=", "url(", "http"] {
                assert!(!body.contains(banned), "{banned} in {body}");
            }
        }
        let status = |a: &Answer| {
            split(&response(a, "x"))
                .0
                .lines()
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(status(&answers[0]), "HTTP/1.1 200 OK");
        assert_eq!(status(&answers[2]), "HTTP/1.1 400 Bad Request");
        assert_eq!(status(&answers[4]), "HTTP/1.1 404 Not Found");
    }

    #[test]
    fn what_the_request_carries_is_escaped_and_cut() {
        let hostile = "<script>alert(1)</script><img src=x onerror=\"alert('2')\">&amp;";
        let r = response(
            &Answer::Denied {
                error: hostile.into(),
                description: Some(hostile.into()),
            },
            "credsync login --profile <dev>",
        );
        let (_, body) = split(&r);
        assert!(
            !body.contains("<script") && !body.contains("<img"),
            "{body}"
        );
        let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x \
                       onerror=&quot;alert(&apos;2&apos;)&quot;&gt;&amp;amp;";
        assert_eq!(body.matches(escaped).count(), 2, "{body}");
        assert!(
            body.contains("credsync login --profile &lt;dev&gt;"),
            "{body}"
        );

        let long = "x".repeat(5000);
        let r = response(
            &Answer::Denied {
                error: "e".into(),
                description: Some(long),
            },
            "credsync login",
        );
        assert!(
            r.contains(&format!("{}…</p>", "x".repeat(MAX_SHOWN))),
            "{r}"
        );
        assert!(!r.contains(&"x".repeat(MAX_SHOWN + 1)));
    }

    #[test]
    fn a_failure_says_what_happened_and_what_to_run() {
        let r = response(
            &Answer::Denied {
                error: "access_denied".into(),
                description: Some("User denied the request".into()),
            },
            "credsync login --sso-session corp",
        );
        for want in [
            "Sign-in failed",
            "<code>access_denied</code>",
            "User denied the request",
            "<pre><code>credsync login --sso-session corp</code></pre>",
        ] {
            assert!(r.contains(want), "{want} not in {r}");
        }
        let r = response(&Answer::StateMismatch, "credsync login --sso-session corp");
        assert!(r.contains("did not use it"), "{r}");
        assert!(
            r.contains("<code>credsync login --sso-session corp</code>"),
            "{r}"
        );
        // A blank description adds nothing.
        let r = response(
            &Answer::Denied {
                error: "e".into(),
                description: Some(" ".into()),
            },
            "x",
        );
        assert!(!r.contains("class=\"said\""), "{r}");
    }
}
