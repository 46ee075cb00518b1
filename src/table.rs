//! Aligned plain-text tables for the CLI (`state`, `check`, the demo view).

/// Rows padded to column widths (in characters), two spaces apart; `(none)` for no rows.
pub fn columns(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() {
        return "  (none)\n".to_owned();
    }
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let all_rows: Vec<&Vec<String>> = std::iter::once(&header_row)
        .filter(|h| !h.is_empty())
        .chain(rows.iter())
        .collect();
    let column_count = all_rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..column_count)
        .map(|i| {
            all_rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in all_rows {
        let mut line = String::from(" ");
        for (cell, width) in row.iter().zip(&widths) {
            line.push(' ');
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 1));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
