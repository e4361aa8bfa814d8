import Foundation

extension ConflictDTO {
    /// One or two sentences in plain words: what each device did, which write was kept, and why.
    ///
    /// This is what support reads out when a reader asks why a bookmark vanished.
    public var explanation: String {
        let article = "article \(articleId)"
        switch rule {
        case .lastWriterWins, .addWins:
            guard let loser else { return "\(user)'s device \(winner.deviceId) \(Self.action(field, winner.value, articleId))." }
            let opening = "\(user)'s devices \(winner.deviceId) and \(loser.deviceId) changed \(article) without having seen each other's change: "
                + "\(winner.deviceId) \(Self.action(field, winner.value)) (mutation \(winner.mutationId), clock \(Self.clock(winner.hlc))) "
                + "and \(loser.deviceId) \(Self.action(field, loser.value)) (mutation \(loser.mutationId), clock \(Self.clock(loser.hlc)))."
            if rule == .addWins {
                return opening + " For bookmarks, adding wins over removing whatever the clocks say, so the article stayed bookmarked and the change from \(loser.deviceId) was not applied."
            }
            return opening + " For \(field == .read ? "read status" : "reading position") the later change wins, so the change from \(winner.deviceId) was kept and the one from \(loser.deviceId) was not applied."
        case .clockSkew:
            let ahead = (loser?.hlc.wall ?? winner.hlc.wall) - winner.hlc.wall
            return "\(user)'s device \(winner.deviceId) \(Self.action(field, winner.value, articleId)) (mutation \(winner.mutationId)) "
                + "with its clock \(Self.duration(millis: ahead)) ahead of the server's. The change was applied, "
                + "but ordered by the server's time (\(Self.clock(winner.hlc))) instead of the device's (\(Self.clock(loser?.hlc ?? winner.hlc)))."
        case .restoreReplay:
            guard let loser else { return "\(user)'s device \(winner.deviceId) \(Self.action(field, winner.value, articleId))." }
            return "After the server's database was restored, \(user)'s devices gave back their changes to \(article): "
                + "\(winner.deviceId) \(Self.action(field, winner.value)) (clock \(Self.clock(winner.hlc))) and "
                + "\(loser.deviceId) \(Self.action(field, loser.value)) (clock \(Self.clock(loser.hlc))). What each had seen was lost "
                + "with the old database, so the later clock wins: the change from \(winner.deviceId) was kept."
        case .articleDeleted:
            return "\(user)'s device \(winner.deviceId) \(Self.action(field, winner.value, articleId)) (mutation \(winner.mutationId)) "
                + "after the article had been deleted. The change is kept and comes back if the article is published again."
        }
    }

    /// What a write did, in words: "marked it read", or with an article id "marked article a-1 read".
    static func action(_ field: StateField, _ value: FieldValue, _ articleId: String? = nil) -> String {
        let it = articleId.map { "article \($0)" } ?? "it"
        switch (field, value) {
        case (.read, .bool(true)): return "marked \(it) read"
        case (.read, .bool(false)): return "marked \(it) unread"
        case (.bookmarked, .bool(true)): return "bookmarked \(it)"
        case (.bookmarked, .bool(false)): return "removed the bookmark on \(it)"
        case (.progress, .number(let x)): return "set the reading position of \(it) to \(Int((x * 100).rounded()))%"
        default: return "set \(field) of \(it) to \(value)"
        }
    }

    /// `2026-11-27 10:03:05.123 UTC`.
    static func clock(_ hlc: HLC) -> String {
        let text = Timestamp.format(Timestamp.date(millis: hlc.wall))
            .replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " UTC")
        return hlc.counter == 0 ? text : "\(text) +\(hlc.counter)"
    }

    static func duration(millis: Int64) -> String {
        let seconds = Double(millis) / 1000
        if seconds < 120 { return "\(Int(seconds)) seconds" }
        if seconds < 7200 { return "\(Int(seconds / 60)) minutes" }
        if seconds < 172_800 { return "\(Int(seconds / 3600)) hours" }
        return "\(Int(seconds / 86400)) days"
    }
}
