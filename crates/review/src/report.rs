//! The report a confirmed case produces, shaped like NCMEC's CyberTipline report: the JSON
//! hashguard keeps and exports, and the XML the CyberTipline API takes, with every element in
//! the order its schema gives (the API refuses XML out of order). The `report` element is what
//! the API's report submission takes; each `fileDetails` element what its file-details
//! submission takes for one file (the API gives the report and file ids when the report and
//! the files are submitted; here they are the case's item numbers).

use serde::Serialize;

/// One reported file.
#[derive(Debug, Clone, Serialize)]
pub struct ReportedFile {
    /// The item's number in the case (the file id until the API assigns one).
    pub file_id: String,
    /// A name for the file (the upload's attachment id; the original name is never known to
    /// the server).
    pub file_name: String,
    /// Whether reviewers viewed it (its visual derivative, unblurred).
    pub viewed: bool,
    /// A1, A2, B1 or B2.
    pub industry_classification: String,
    /// The file's PDQ hash (64 hex digits), if known.
    pub pdq: Option<String>,
    /// The bank and list entry it matched, and the distance.
    pub matched: Option<String>,
}

/// One reviewer's confirmation.
#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    /// The reviewer's username.
    pub reviewer: String,
    /// Which decision it was (`independent` or `senior`).
    pub stage: String,
    /// Their classification.
    pub classification: String,
    /// When (ISO 8601, UTC).
    pub at: String,
}

/// A report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The incident type.
    pub incident_type: String,
    /// When the incident happened (the upload or the threshold), ISO 8601 UTC.
    pub incident_date_time: String,
    /// Who reports: the deployment's reporting contact.
    pub reporter_name: String,
    /// Their email.
    pub reporter_email: String,
    /// The service the reported account used.
    pub esp_service: String,
    /// The reported account's id.
    pub reported_account: String,
    /// The files.
    pub files: Vec<ReportedFile>,
    /// The reviewers' confirmations (G4: at least two humans).
    pub confirmations: Vec<Confirmation>,
    /// The case.
    pub case_id: String,
}

/// The incident type the CyberTipline API names for child sexual abuse material.
pub const INCIDENT_TYPE: &str = "Child Pornography (possession, manufacture, and distribution)";

/// ISO 8601 in UTC of Unix seconds.
pub fn iso8601(t: i64) -> String {
    let s = crate::web::utc(t);
    format!("{}T{}Z", &s[..10], &s[11..])
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry are dropped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn el(out: &mut String, name: &str, text: &str) {
    out.push_str(&format!("<{name}>{}</{name}>", esc(text)));
}

impl Report {
    /// The report as JSON (pretty).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// The summary of the reviews for `additionalInfo`.
    fn reviews_text(&self) -> String {
        let who: Vec<String> = self
            .confirmations
            .iter()
            .map(|c| {
                format!(
                    "{} ({}, {}, {})",
                    c.reviewer, c.stage, c.classification, c.at
                )
            })
            .collect();
        format!(
            "Detected by hashguard (private PDQ matching against hash lists of at least two organisations) and confirmed by human review: {}. hashguard case {}.",
            who.join("; "),
            self.case_id
        )
    }

    /// The XML: a `cybertiplineExport` holding the `report` element and one `fileDetails` per
    /// file, every element in the schema's order.
    pub fn to_xml(&self) -> String {
        let mut x =
            String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<cybertiplineExport>");
        x.push_str("<report>");
        x.push_str("<incidentSummary>");
        el(&mut x, "incidentType", &self.incident_type);
        el(&mut x, "incidentDateTime", &self.incident_date_time);
        x.push_str("</incidentSummary>");
        x.push_str("<reporter><reportingPerson>");
        el(&mut x, "firstName", &self.reporter_name);
        el(&mut x, "email", &self.reporter_email);
        x.push_str("</reportingPerson></reporter>");
        x.push_str("<personOrUserReported>");
        el(&mut x, "espIdentifier", &self.reported_account);
        el(&mut x, "espService", &self.esp_service);
        x.push_str("</personOrUserReported>");
        el(&mut x, "additionalInfo", &self.reviews_text());
        x.push_str("</report>");
        for f in &self.files {
            x.push_str("<fileDetails>");
            el(&mut x, "fileId", &f.file_id);
            el(&mut x, "fileName", &f.file_name);
            el(
                &mut x,
                "fileViewedByEsp",
                if f.viewed { "true" } else { "false" },
            );
            el(&mut x, "exifViewedByEsp", "false");
            el(&mut x, "publiclyAvailable", "false");
            el(&mut x, "fileRelevance", "Reported");
            el(&mut x, "industryClassification", &f.industry_classification);
            if let Some(pdq) = &f.pdq {
                x.push_str(&format!(
                    "<originalFileHash hashType=\"PDQ\">{}</originalFileHash>",
                    esc(pdq)
                ));
            }
            if let Some(m) = &f.matched {
                el(
                    &mut x,
                    "additionalInfo",
                    &format!("Matched {m}. What reviewers viewed is the visual derivative the sender's client made (a small greyscale thumbnail), not the file."),
                );
            }
            x.push_str("</fileDetails>");
        }
        x.push_str("</cybertiplineExport>\n");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The children of `parent` (its first occurrence) in document order, by name.
    fn children(xml: &str, parent: &str) -> Vec<String> {
        let open = format!("<{parent}>");
        let start = xml.find(&open).expect("parent") + open.len();
        let end = xml[start..].find(&format!("</{parent}>")).expect("close") + start;
        let body = &xml[start..end];
        let mut names = Vec::new();
        let mut depth = 0;
        let mut rest = body;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '/')
                .collect();
            if let Some(n) = name.strip_prefix('/') {
                let _ = n;
                depth -= 1;
            } else {
                if depth == 0 {
                    names.push(name.clone());
                }
                depth += 1;
            }
        }
        names
    }

    fn sample() -> Report {
        Report {
            incident_type: INCIDENT_TYPE.to_string(),
            incident_date_time: iso8601(1_700_000_000),
            reporter_name: "Trust & Safety <on call>".to_string(),
            reporter_email: "tns@example.invalid".to_string(),
            esp_service: "hashguard messenger".to_string(),
            reported_account: "ab".repeat(16),
            files: vec![ReportedFile {
                file_id: "0".to_string(),
                file_name: "cd".repeat(16),
                viewed: true,
                industry_classification: "A1".to_string(),
                pdq: Some("f".repeat(64)),
                matched: Some("bank standin-a, entry x, distance 4".to_string()),
            }],
            confirmations: vec![],
            case_id: "ef".repeat(16),
        }
    }

    /// The CyberTipline API refuses elements out of its schema's order.
    #[test]
    fn xml_elements_follow_the_schema_order() {
        let xml = sample().to_xml();
        let order = |parent: &str, expected: &[&str]| {
            let got = children(&xml, parent);
            // Every element present appears in the schema's relative order.
            let positions: Vec<usize> =
                got.iter()
                    .map(|g| {
                        expected.iter().position(|e| e == g).unwrap_or_else(|| {
                            panic!("{g} is not a child of {parent} in the schema")
                        })
                    })
                    .collect();
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "{parent}: {got:?}"
            );
            got
        };
        let report = order(
            "report",
            &[
                "incidentSummary",
                "internetDetails",
                "lawEnforcement",
                "reporter",
                "personOrUserReported",
                "intendedRecipient",
                "victim",
                "additionalInfo",
            ],
        );
        assert_eq!(
            report,
            [
                "incidentSummary",
                "reporter",
                "personOrUserReported",
                "additionalInfo"
            ]
        );
        order(
            "incidentSummary",
            &[
                "incidentType",
                "escalateToHighPriority",
                "reportAnnotations",
                "incidentDateTime",
                "incidentDateTimeDescription",
            ],
        );
        order(
            "fileDetails",
            &[
                "reportId",
                "fileId",
                "fileName",
                "originalFileName",
                "locationOfFile",
                "fileViewedByEsp",
                "exifViewedByEsp",
                "publiclyAvailable",
                "fileRelevance",
                "fileAnnotations",
                "industryClassification",
                "originalFileHash",
                "ipCaptureEvent",
                "deviceId",
                "details",
                "additionalInfo",
            ],
        );
        // A shuffled document fails the same check (the test can fail).
        let swapped = xml.replacen("<incidentSummary>", "<X>", 1);
        assert!(
            children(&swapped, "report").first().map(String::as_str) != Some("incidentSummary")
        );
        // Text is escaped.
        assert!(xml.contains("Trust &amp; Safety &lt;on call&gt;"));
        assert!(xml.contains("<incidentDateTime>2023-11-14T22:13:20Z</incidentDateTime>"));
        let json: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(json["files"][0]["industry_classification"], "A1");
    }
}
