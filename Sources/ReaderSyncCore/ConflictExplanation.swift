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
            let adjustment = stampedAdjustment
            return "\(user)'s device \(winner.deviceId) \(Self.action(field, winner.value, articleId)) (mutation \(winner.mutationId)) "
                + "with its clock \(Self.offset(millis: adjustment.aheadMillis)) the server's. The change was applied, "
                + "but ordered by the server's time (\(Self.clock(adjustment.serverHlc))) instead of the device's (\(Self.clock(adjustment.deviceHlc)))."
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
        case (.progress, .number(let x)) where x.isFinite && (0...1).contains(x):
            return "set the reading position of \(it) to \(Int((x * 100).rounded()))%"
        default: return "set \(field) of \(it) to \(value)"
        }
    }

    /// `2026-11-27 10:03:05.123 UTC`, with `+counter` when the counter is not zero; a wall no date
    /// can show is given as its raw milliseconds (see ``Timestamp/displayText(millis:)``).
    static func clock(_ hlc: HLC) -> String {
        let text = Timestamp.displayText(millis: hlc.wall)
        return hlc.counter == 0 ? text : "\(text) +\(hlc.counter)"
    }

    /// "7 minutes ahead of" or "3 seconds behind": how a device's clock stood against the server's.
    static func offset(millis: Int64) -> String {
        millis < 0 ? "\(duration(millis: millis)) behind" : "\(duration(millis: millis)) ahead of"
    }

    /// A length of time in the largest whole unit that keeps it readable, for any `Int64` milliseconds
    /// (the sign is dropped: the caller says which way).
    static func duration(millis: Int64) -> String {
        // The magnitude as UInt64, so Int64.min has one too; integer division only.
        let seconds = millis.magnitude / 1000
        if seconds < 120 { return "\(seconds) seconds" }
        if seconds < 7200 { return "\(seconds / 60) minutes" }
        if seconds < 172_800 { return "\(seconds / 3600) hours" }
        let days = seconds / 86400
        if days < 730 { return "\(days) days" }
        return "\(days / 365) years"
    }

    /// For a table or a one-line summary: the note that replaces the lost side of an entry that
    /// lost nothing (a clock adjustment or a notice); `nil` for a real conflict.
    public var note: String? {
        switch kind {
        case .conflict:
            return nil
        case .clockAdjustment:
            let adjustment = stampedAdjustment
            return "clock adjusted: device stamped \(Self.clock(adjustment.deviceHlc)), "
                + "server time \(Self.clock(adjustment.serverHlc)), \(adjustment.aheadMillis < 0 ? "behind" : "ahead") by "
                + Self.duration(millis: adjustment.aheadMillis)
        case .notice:
            return "article deleted: change kept for when it returns"
        }
    }
}
