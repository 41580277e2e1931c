//! Text made safe inside XML and HTML (an element's text or a quoted attribute): the one
//! escaper of the plist credsync installs and of the page its sign-in shows a browser.

/// `s` with `&`, `<`, `>`, `"` and `'` replaced by their entities (`&apos;` is XML's and
/// HTML5's).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
