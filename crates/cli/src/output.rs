//! How inputs are named in the output formats: CSV fields quoted as RFC 4180 says, and file
//! names exactly as the operating system has them, so that two files never print the same.

use std::borrow::Cow;

use base64::Engine as _;

use crate::inputs::Input;

/// Quotes a CSV field when it needs it (a comma, a quote or a line break), as RFC 4180 says.
pub fn csv_field(s: &str) -> Cow<'_, str> {
    match csv_field_bytes(s.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(s),
        Cow::Owned(quoted) => Cow::Owned(String::from_utf8_lossy(&quoted).into_owned()),
    }
}

/// [`csv_field`] for any bytes: a file name that is not UTF-8 is written as it is, since CSV
/// carries bytes and a lossy conversion could make two names equal.
pub fn csv_field_bytes(field: &[u8]) -> Cow<'_, [u8]> {
    if !field
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        return Cow::Borrowed(field);
    }
    let mut quoted = Vec::with_capacity(field.len() + 2);
    quoted.push(b'"');
    for &b in field {
        if b == b'"' {
            quoted.push(b'"');
        }
        quoted.push(b);
    }
    quoted.push(b'"');
    Cow::Owned(quoted)
}

/// The input's name as a CSV field.
pub fn csv_path(input: &Input) -> Vec<u8> {
    csv_field_bytes(&input.raw_name()).into_owned()
}

/// Sets `"path"` in a JSON object: the name as text, and when the name is not UTF-8 also
/// `"path_base64"`, its exact bytes (JSON strings hold only Unicode; ripgrep's JSON output
/// uses base64 for such bytes too).
pub fn json_path(object: &mut serde_json::Value, input: &Input) {
    object["path"] = input.display_name().into();
    if !input.name_is_utf8() {
        object["path_base64"] = base64::engine::general_purpose::STANDARD
            .encode(input.raw_name())
            .into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_need_it() {
        assert_eq!(csv_field("a.jpg"), "a.jpg");
        assert_eq!(csv_field("a,b.jpg"), "\"a,b.jpg\"");
        assert_eq!(csv_field("say \"hi\".jpg"), "\"say \"\"hi\"\".jpg\"");
        assert_eq!(csv_field("two\nlines.jpg"), "\"two\nlines.jpg\"");
        assert_eq!(&*csv_field_bytes(b"\xff,\xfe"), b"\"\xff,\xfe\"");
    }
}
