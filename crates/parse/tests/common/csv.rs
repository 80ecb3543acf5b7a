// Reading loghub's structured CSV files, shared by the integration tests and `sshd.rs`'s unit tests
// (which `include!` this file, so no inner attributes or doc comments here).

/// Splits one CSV line (RFC 4180 quotes).
pub fn csv_line(line: &str) -> Vec<String> {
    let mut row = Vec::new();
    let mut cur = String::new();
    let mut q = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if q && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => q = !q,
            ',' if !q => row.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    row.push(cur);
    row
}
