import ReaderSyncCore

/// One field's history laid out as a picture (the console's article page): one lane per device,
/// one mark per decision in the server's order, and under the lanes the field's value from each
/// applied write to the next.
///
/// Columns follow the order the server decided in (history ids), not the devices' clocks: under
/// `add_wins` a bookmark with an older clock can win over a newer removal, so only the decision
/// order says which value held when. Each mark is labelled with the device's time.
///
/// Every text is given to the template as is; the template escapes it (Mustache `{{…}}`).
struct FieldTimeline: Sendable {
    struct Lane: Sendable {
        var deviceId: String
        var y: Int
        var labelY: Int
    }

    struct Mark: Sendable {
        var deviceId: String
        var x: Int
        var y: Int
        /// `applied`, `lost` or `rejected`: the mark's shape, as a CSS class.
        var outcome: String
        var rejected: Bool
        /// The value it wrote, in a word ("on", "read", "40%").
        var value: String
        var valueY: Int
        /// The device's clock, `HH:mm:ss`, as the device sent it (also when the server clamped
        /// it); the full time is in ``line``.
        var time: String
        var timeY: Int
        /// The history line (``HistoryEntry/line``), shown on hover.
        var line: String
        /// Cross arms for a rejected mark.
        var x1: Int, x2: Int, y1: Int, y2: Int
    }

    /// A stretch of time during which the field held one value.
    struct Span: Sendable {
        var x: Int
        var width: Int
        var textX: Int
        var value: String
        /// `on` or `off`: the fill, as a CSS class (position: `on` above 0).
        var tone: String
    }

    var field: String
    var width: Int
    var height: Int
    var lanes: [Lane]
    var marks: [Mark]
    var spans: [Span]
    var spanY: Int
    var spanTextY: Int
    var axisY: Int
    var laneLeft = Self.left
    var laneRight: Int
    /// Whether there is anything to draw (a stored property: templates read stored ones only).
    var hasMarks: Bool

    static let left = 130
    static let column = 104
    static let laneHeight = 56
    static let top = 28

    /// - Parameter history: the field's entries, oldest (first decided) first.
    init(field: StateField, history: [HistoryEntry]) {
        self.field = field.rawValue
        var deviceIds: [String] = []
        for entry in history where !deviceIds.contains(where: { $0.isExactly(entry.write.deviceId) }) {
            deviceIds.append(entry.write.deviceId)
        }
        lanes = deviceIds.enumerated().map { index, id in
            let y = Self.top + Self.laneHeight * index + Self.laneHeight / 2
            return Lane(deviceId: id, y: y, labelY: y + 4)
        }
        laneRight = Self.left + Self.column * max(history.count, 1)
        width = max(laneRight + 20, 480)
        spanY = Self.top + Self.laneHeight * max(deviceIds.count, 1) + 8
        spanTextY = spanY + 17
        axisY = spanY + 44
        height = axisY + 10
        var marks: [Mark] = []
        var spans: [Span] = []
        for (index, entry) in history.enumerated() {
            let lane = deviceIds.firstIndex(where: { $0.isExactly(entry.write.deviceId) }) ?? 0
            let x = Self.left + Self.column * index + Self.column / 2
            let y = lanes[lane].y
            let value = Self.word(field, entry.write.value)
            marks.append(Mark(
                deviceId: entry.write.deviceId, x: x, y: y, outcome: entry.outcome.rawValue,
                rejected: entry.outcome == .rejected, value: value, valueY: y + 24,
                time: Self.clockTime(entry.clampedFrom ?? entry.write.hlc), timeY: y - 14, line: entry.line,
                x1: x - 7, x2: x + 7, y1: y - 7, y2: y + 7))
            if entry.outcome == .applied {
                if let last = spans.indices.last {
                    spans[last].width = x - spans[last].x
                    spans[last].textX = spans[last].x + spans[last].width / 2
                }
                spans.append(Span(x: x, width: laneRight - x, textX: x + (laneRight - x) / 2,
                                  value: FieldExplanation.shown(field, entry.write.value),
                                  tone: Self.isOn(entry.write.value) ? "on" : "off"))
            }
        }
        self.marks = marks
        self.spans = spans
        hasMarks = !marks.isEmpty
    }

    /// A write's value in a word, for a mark's label.
    static func word(_ field: StateField, _ value: FieldValue) -> String {
        switch (field, value) {
        case (.bookmarked, .bool(let on)): return on ? "bookmark" : "remove"
        case (.read, .bool(let on)): return on ? "read" : "unread"
        case (.progress, .number(let x)): return FieldExplanation.percent(x)
        default: return "\(value)"
        }
    }

    static func isOn(_ value: FieldValue) -> Bool {
        switch value {
        case .bool(let on): return on
        case .number(let x): return x > 0
        default: return false
        }
    }

    /// `HH:mm:ss` of an HLC's wall clock, UTC.
    static func clockTime(_ hlc: HLC) -> String {
        let text = Timestamp.displayText(millis: hlc.wall)  // "2026-12-01 14:03:05 UTC"
        let parts = text.split(separator: " ")
        return parts.count == 3 ? String(parts[1]) : text
    }
}
