//! Go's `text/tabwriter` as kubectl's describers use it (min width 0, padding 2, spaces):
//! tab-terminated cells of consecutive lines form a column block padded to its widest cell.

/// More cells than this on a line are not aligned (the describers use at most five, the bench
/// table nine); it bounds the recursion whatever the text holds.
const MAX_CELLS: usize = 16;

/// Aligns `text`, whose cells are separated by `\t`.
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.splitn(MAX_CELLS, '\t').collect())
        .collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format(&lines, &mut widths, 0, lines.len(), &mut out);
    out
}

const PADDING: usize = 2;

/// Go's `Writer.format`: lays out lines `line0..line1` given the widths of the columns to the
/// left, recursing into each block of lines that has a cell in the next column.
fn format(
    lines: &[Vec<&str>],
    widths: &mut Vec<usize>,
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut start = line0;
    let mut this = line0;
    while this < line1 {
        // A cell in `column` exists if the line has a tab after it.
        if lines[this].len() > column + 1 {
            emit(lines, widths, start, this, out);
            let mut width = 0;
            let mut end = this;
            while end < line1 && lines[end].len() > column + 1 {
                width = width.max(lines[end][column].chars().count() + PADDING);
                end += 1;
            }
            widths.push(width);
            format(lines, widths, this, end, out);
            widths.pop();
            start = end;
            this = end;
        } else {
            this += 1;
        }
    }
    emit(lines, widths, start, line1, out);
}

fn emit(lines: &[Vec<&str>], widths: &[usize], from: usize, to: usize, out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            if j + 1 < line.len() && j < widths.len() {
                out.push_str(cell);
                let pad = widths[j].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_tabs_neither_recurse_deeply_nor_vanish() {
        let text = format!("Key:\t{}end\n", "\t".repeat(100_000));
        assert!(align(&text).ends_with("end\n"));
    }

    #[test]
    fn aligns_blocks_like_kubectl_describe() {
        let text =
            "Name:\tpi\nNamespace:\tdefault\nLabels:\ta=b\n\tc=d\nPod Template:\n  Labels:\tx=y\n";
        assert_eq!(
            align(text),
            "Name:       pi\nNamespace:  default\nLabels:     a=b\n            c=d\nPod Template:\n  Labels:  x=y\n"
        );
    }
}
