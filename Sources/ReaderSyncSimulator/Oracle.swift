import ReaderSyncClient
import ReaderSyncCore

/// The invariants checked after the final fault-free sync, each with the first case that breaks it.
struct Oracle {
    let runner: Runner

    /// - Parameter views: every user's final state as the server serves it.
    func check(_ views: [String: Runner.ServerView]) throws -> [InvariantResult] {
        [
            try convergence(views),
            noLostIntent(views),
            exactlyOnce(),
            try noResurrection(),
            referenceModel(views),
            InvariantResult(name: "pending changes stay visible", passed: runner.overlayViolation == nil, detail: runner.overlayViolation),
            InvariantResult(name: "no unexpected errors", passed: runner.unexpectedErrors.isEmpty, detail: runner.unexpectedErrors.first),
            InvariantResult(name: "observers show what the store holds", passed: runner.observerViolation == nil,
                            detail: runner.observerViolation),
        ]
    }

    /// 1. Every device of a user holds exactly the server's state for that user and its live
    /// articles in their latest version; a partial device, what its window and sections call for
    /// (``partialHoldings(of:view:)``).
    func convergence(_ views: [String: Runner.ServerView]) throws -> InvariantResult {
        let name = "convergence"
        for device in runner.devices.sorted(by: { $0.name < $1.name }) {
            guard let view = views[device.user] else { continue }
            let articles = try device.store.articleVersions()
            if try device.store.followedSections() != nil || !device.store.options.window.isUnbounded {
                if let failure = try partialHoldings(of: device, view: view) {
                    return InvariantResult(name: name, passed: false, detail: "\(device.user) on \(device.name): \(failure)")
                }
            } else if articles.filter({ !Self.isPinnedExpired($0.key, view) }) != view.articles {
                let missing = view.articles.keys.filter { articles[$0] != view.articles[$0] }.sorted().first
                let extra = articles.keys.filter { view.articles[$0] == nil && !Self.isPinnedExpired($0, view) }.sorted().first
                let article = missing ?? extra ?? "?"
                return InvariantResult(name: name, passed: false, detail: "\(device.user) on \(device.name): article \(article) "
                    + "is at version \(articles[article].map(String.init) ?? "none") on the device, \(view.articles[article].map(String.init) ?? "none") on the server")
            }
            var seen = Set<String>()
            for local in try device.store.allStates() {
                seen.insert(local.articleId)
                let server = view.states[local.articleId]
                // Compaction removed the article and its states; a device may keep its copy of the
                // state (the protocol tells it nothing), which a new article under the id resets.
                if server == nil, runner.removedArticles.contains(local.articleId) { continue }
                let expected = (server?.read ?? false, server?.bookmarked ?? false, server?.progress ?? 0)
                let fields: [(StateField, Bool)] = [
                    (.read, local.isRead == expected.0), (.bookmarked, local.isBookmarked == expected.1), (.progress, local.progress == expected.2),
                ]
                if let (field, _) = fields.first(where: { !$0.1 }) {
                    return InvariantResult(name: name, passed: false, detail: "\(device.user) on \(device.name): article \(local.articleId), "
                        + "field \(field) differs from the server (device \(local.isRead)/\(local.isBookmarked)/\(local.progress), "
                        + "server \(expected.0)/\(expected.1)/\(expected.2))")
                }
                if let server, server.version != local.version {
                    return InvariantResult(name: name, passed: false, detail: "\(device.user) on \(device.name): article \(local.articleId) "
                        + "state version \(local.version) on the device, \(server.version) on the server")
                }
            }
            if let missing = view.states.keys.sorted().first(where: { !seen.contains($0) }) {
                return InvariantResult(name: name, passed: false, detail: "\(device.user) on \(device.name): article \(missing) has state on the server but not on the device")
            }
        }
        return InvariantResult(name: name, passed: true)
    }

    /// Whether the server expired the article and the user has it bookmarked: a device keeps it,
    /// in the version it had (pinned).
    static func isPinnedExpired(_ id: ExactText, _ view: Runner.ServerView) -> Bool {
        view.articles[id] == nil && view.expired.contains(id) && view.states[id.string]?.bookmarked == true
    }

    /// What a device with a window or sections holds, against the server's live articles: `nil`
    /// when it holds what it should, else the first thing wrong.
    ///
    /// - It may hold an article of a section it follows only at the server's version, and one of
    ///   another section only while bookmarked (it gets that one's tombstone, not its updates);
    ///   an expired one only while bookmarked, in any version.
    /// - It keeps at most `newest` articles besides bookmarked ones.
    /// - It holds every live article of its sections (at the server's version) among the newest
    ///   `newest − h`, where h counts what can leave a window without bringing an older article
    ///   back: the articles it held that were retracted or moved to another section since it last
    ///   chose its sections (a windowed device then backfills every section it follows); every one
    ///   of them without a window.
    func partialHoldings(of device: SimDevice, view: Runner.ServerView) throws -> String? {
        let stored = try device.store.articleVersions()
        let followed = try device.store.followedSections()
        let window = device.store.options.window
        let bookmarked = Set(view.states.values.filter(\.bookmarked).map(\.articleId.exact))
        func isFollowed(_ id: ExactText) -> Bool {
            guard let followed else { return true }
            return view.details[id].map { followed.contains($0.section) } ?? false
        }
        for (id, version) in stored.sorted(by: { $0.key.string < $1.key.string }) where !Self.isPinnedExpired(id, view) {
            guard let server = view.articles[id] else {
                return "holds article \(id.string), which the server no longer has"
            }
            if isFollowed(id) {
                if version != server { return "article \(id.string) is at version \(version) on the device, \(server) on the server" }
            } else if !bookmarked.contains(id) {
                return "holds article \(id.string) of section \(view.details[id]?.section ?? "?"), which it does not follow, not bookmarked"
            } else if version > server {
                return "article \(id.string) is at version \(version) on the device, past the server's \(server)"
            }
        }
        let unpinned = stored.keys.count(where: { !bookmarked.contains($0) })
        if let newest = window.newest, unpinned > newest {
            return "holds \(unpinned) articles besides bookmarked ones; its window keeps \(newest)"
        }
        let wanted = view.articles.keys.filter(isFollowed).sorted { a, b in
            let (pa, pb) = (view.details[a]?.publishedAt ?? "", view.details[b]?.publishedAt ?? "")
            return pa == pb ? b.string.utf8.lexicographicallyPrecedes(a.string.utf8) : pb.utf8.lexicographicallyPrecedes(pa.utf8)
        }
        let holes = runner.windowHoles[device.name, default: 0]
        let required = window.newest.map { max(0, $0 - holes) } ?? wanted.count
        if let missing = wanted.prefix(required).first(where: { stored[$0] != view.articles[$0] }) {
            return "lacks article \(missing.string) (version \(view.articles[missing] ?? 0)), one of the newest \(required) of "
                + (followed.map { "its sections \($0.sorted())" } ?? "every section")
        }
        return nil
    }

    /// 2. Every recorded mutation is reflected in the final state, superseded by a later change of the
    /// same device, overwritten by a later write, the loser of a logged conflict, superseded by an
    /// agreeing write with a newer stamp (which then answers for it), or rejected with a reason.
    func noLostIntent(_ views: [String: Runner.ServerView]) -> InvariantResult {
        let name = "no lost intent"
        let intents = runner.intents.all
        var latestOwn: [String: Int64] = [:]
        for intent in intents {
            let key = "\(intent.device)|\(intent.mutation.articleId)|\(intent.mutation.field)"
            latestOwn[key] = max(latestOwn[key] ?? 0, intent.mutation.id)
        }
        // A change given back after a server reset travels under a new id, with its article, field,
        // value and HLC: every id a device pushed a change under counts for the change.
        var aliases: [String: Set<Int64>] = [:]
        var rejected = Set<String>()
        // Writes the server applied, by user, article, field and value.
        var appliedStamps: [String: [(HLC, String)]] = [:]
        for entry in runner.recorder.all {
            let outcomes = Dictionary(entry.results.map { ($0.id, $0.outcome) }, uniquingKeysWith: { first, _ in first })
            for m in entry.request.mutations {
                aliases["\(entry.request.deviceId)|\(m.articleId)|\(m.field)|\(m.value)|\(m.hlc)", default: []].insert(m.id)
                if outcomes[m.id] == .applied {
                    appliedStamps["\(entry.user)|\(m.articleId)|\(m.field)|\(m.value)", default: []].append((m.hlc, entry.request.deviceId))
                }
            }
            for result in entry.results where result.outcome == .rejected && !(result.reason ?? "").isEmpty {
                rejected.insert("\(entry.request.deviceId)|\(result.id)")
            }
        }
        var losers = Set<String>()
        var clamped: [String: HLC] = [:]
        for conflict in runner.conflictLog {
            guard let loser = conflict.loser else { continue }
            if conflict.rule == .clockSkew {
                clamped["\(loser.deviceId)|\(loser.mutationId)"] = conflict.winner.hlc
            } else {
                losers.insert("\(loser.deviceId)|\(loser.mutationId)")
            }
        }
        for intent in intents {
            let m = intent.mutation
            // A change to a retracted or expired article whose state compaction then removed: gone by design.
            if runner.removedArticles.contains(m.articleId) { continue }
            let state = views[intent.user]?.states[m.articleId]
            let finalValue: FieldValue
            switch m.field {
            case .read: finalValue = .bool(state?.read ?? false)
            case .bookmarked: finalValue = .bool(state?.bookmarked ?? false)
            case .progress: finalValue = .number(state?.progress ?? 0)
            }
            if finalValue == m.value { continue }
            if latestOwn["\(intent.device)|\(m.articleId)|\(m.field)"]! > m.id { continue }
            // The server keeps a clamped stamp, so a change given back after a reset may carry that one.
            func alias(_ hlc: HLC) -> Set<Int64> { aliases["\(intent.device)|\(m.articleId)|\(m.field)|\(m.value)|\(hlc)"] ?? [] }
            var ids = alias(m.hlc).union([m.id])
            for id in ids { if let stamp = clamped["\(intent.device)|\(id)"] { ids.formUnion(alias(stamp)) } }
            if ids.contains(where: { rejected.contains("\(intent.device)|\($0)") }) { continue }
            if ids.contains(where: { losers.contains("\(intent.device)|\($0)") }) { continue }
            // An agreeing write with a newer stamp replaced or superseded it without a conflict
            // (nothing disagreed); that write answers for it, and is checked as an intent of its own.
            let agreeing = appliedStamps["\(intent.user)|\(m.articleId)|\(m.field)|\(m.value)"] ?? []
            if agreeing.contains(where: { $0.1 != intent.device && HLC.orders(m.hlc, before: $0.0, intent.device, $0.1) }) { continue }
            let stamp = ids.compactMap { clamped["\(intent.device)|\($0)"] }.max() ?? m.hlc
            if let writer = state?.writers[m.field],
               (writer.hlc.wall, writer.hlc.counter, writer.deviceId) > (stamp.wall, stamp.counter, intent.device) {
                continue
            }
            return InvariantResult(name: name, passed: false, detail: "\(intent.user), article \(m.articleId), field \(m.field): "
                + "\(intent.device)'s mutation \(m.id) (\(m.value)) is not in the final state (\(finalValue)), was not followed "
                + "by a later change of the same device, overwritten by a later write, logged as a conflict loser, or rejected")
        }
        return InvariantResult(name: name, passed: true)
    }

    /// 3. No mutation was applied twice by the same server database.
    func exactlyOnce() -> InvariantResult {
        var applied: [String: Int] = [:]
        for entry in runner.recorder.all {
            for result in entry.results where result.outcome == .applied {
                let key = "\(entry.incarnation)|\(entry.request.deviceId)|\(result.id)"
                applied[key, default: 0] += 1
                if applied[key]! > 1 {
                    let article = entry.request.mutations.first { $0.id == result.id }
                    return InvariantResult(name: "exactly once", passed: false, detail: "\(entry.user) on \(entry.request.deviceId): "
                        + "mutation \(result.id) (article \(article?.articleId ?? "?"), field \(article.map { "\($0.field)" } ?? "?")) was applied twice")
                }
            }
        }
        return InvariantResult(name: "exactly once", passed: true)
    }

    /// 4. No deleted article is on any device.
    func noResurrection() throws -> InvariantResult {
        let retracted = Set(runner.retracted)
        for device in runner.devices.sorted(by: { $0.name < $1.name }) {
            if let article = try device.store.articleVersions().keys.sorted().first(where: { retracted.contains($0.string) }) {
                return InvariantResult(name: "no resurrection", passed: false, detail: "\(device.user) on \(device.name): retracted article \(article) is on the device")
            }
        }
        return InvariantResult(name: "no resurrection", passed: true)
    }

    /// 5. The server's final state equals the independent reference model's.
    func referenceModel(_ views: [String: Runner.ServerView]) -> InvariantResult {
        let name = "server equals the reference model"
        for user in runner.tokens.keys.sorted() {
            let modelRows = runner.model.rows[user] ?? [:]
            let serverStates = views[user]?.states ?? [:]
            for articleId in Set(modelRows.keys).union(serverStates.keys).sorted() {
                let row = modelRows[articleId] ?? ReferenceModel.Row()
                let server = serverStates[articleId]
                let checks: [(StateField, Bool)] = [
                    (.read, row.read == (server?.read ?? false)),
                    (.bookmarked, row.bookmarked == (server?.bookmarked ?? false)),
                    (.progress, row.progress == (server?.progress ?? 0)),
                ]
                if let (field, _) = checks.first(where: { !$0.1 }) {
                    return InvariantResult(name: name, passed: false, detail: "\(user), article \(articleId), field \(field): "
                        + "the server has \(server.map { "\($0.read)/\($0.bookmarked)/\($0.progress)" } ?? "no state"), "
                        + "the model \(row.read)/\(row.bookmarked)/\(row.progress)" + unansweredNote)
                }
                if row.version != (server?.version ?? 0) {
                    return InvariantResult(name: name, passed: false, detail: "\(user), article \(articleId): "
                        + "state version \(server?.version ?? 0) on the server, \(row.version) in the model" + unansweredNote)
                }
            }
        }
        return InvariantResult(name: name, passed: true)
    }

    /// For a failure of invariant 5: the pushes without an answer whose fate the model could not
    /// learn from an answer (see ``PushRecorder``), which a difference may come from.
    private var unansweredNote: String {
        var undecided = 0
        var ambiguous = 0
        var byFinalState = 0
        for entry in runner.recorder.all {
            switch entry.answer {
            case .undecided: undecided += 1
            case .committed(let commit):
                if commit.ambiguous { ambiguous += 1 }
                if commit.decidedAtEnd { byFinalState += 1 }
            case .answered, .unanswered, .notCommitted: break
            }
        }
        let notes = [(undecided, "left out undecided"), (ambiguous, "taken as committed by their first attempt, another possible"),
                     (byFinalState, "found committed from the final state")]
            .filter { $0.0 > 0 }.map { "\($0.0) \($0.1)" }
        return notes.isEmpty ? "" : " (pushes without an answer: \(notes.joined(separator: "; ")))"
    }
}
