import Foundation

/// A plain text table with padded columns, for terminal output.
///
/// Cells are shown with ``terminalSafe(_:)``, so a value with a line break or an escape sequence
/// cannot break the rows apart or reach the terminal as a command.
struct TextTable {
    var header: [String]
    var rows: [[String]]

    func render() -> String {
        let header = self.header.map(terminalSafe)
        let rows = self.rows.map { $0.map(terminalSafe) }
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count {
                widths[i] = max(widths[i], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 || i >= widths.count ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}

/// `text` with the characters a terminal would act on instead of showing written as `\u{…}`:
/// control characters (line breaks, escape), line and paragraph separators, and the bidirectional
/// overrides that make text read differently from how it is stored.
///
/// The server refuses control characters in ids, but not every stored text passed its checks
/// (ingested article ids, databases written by older versions), and output must stay readable.
func terminalSafe(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: needsEscape) else { return text }
    var result = ""
    for scalar in text.unicodeScalars {
        if needsEscape(scalar) {
            result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
        } else {
            result.unicodeScalars.append(scalar)
        }
    }
    return result
}

private func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .control, .lineSeparator, .paragraphSeparator: return true
    default: break
    }
    switch scalar.value {
    case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true  // bidirectional marks and overrides
    default: return false
    }
}
