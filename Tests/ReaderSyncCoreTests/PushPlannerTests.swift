import Testing
@testable import ReaderSyncCore

@Suite("Push planning")
struct PushPlannerTests {
    let now: Int64 = 1_764_000_000_000

    func mutation(_ id: Int64, _ article: String = "a1", _ field: StateField = .read, _ value: FieldValue = .bool(true),
                  wall: Int64? = nil, base: Int64 = 0) -> Mutation {
        Mutation(id: id, articleId: article, field: field, value: value, hlc: HLC(wall: wall ?? now - 1000, counter: 0), baseVersion: base)
    }

    func plan(_ mutations: [Mutation], context: PushContext? = nil, user: Int64 = 1) throws -> PushPlan {
        try PushPlanner.plan(
            userId: user, deviceId: "phone", mutations: mutations,
            context: context ?? PushContext(deviceOwner: nil, lastMutationId: 0, articles: ["a1": .live, "gone": .deleted], states: [:]),
            nowMillis: now, maxClockSkewMillis: 300_000)
    }

    @Test("mutations at or below the device's last id are duplicates and change nothing")
    func duplicates() throws {
        let context = PushContext(deviceOwner: 1, lastMutationId: 5, articles: ["a1": .live], states: [:])
        let p = try plan([mutation(4), mutation(5), mutation(6)], context: context)
        #expect(p.results.map(\.outcome) == [.duplicate, .duplicate, .applied])
        #expect(p.lastMutationId == 6)
        #expect(p.changedStates["a1"]?.version == 1)
        #expect(!p.bindsDevice)
    }

    @Test("unknown article, wrong type and out-of-range progress are rejected and do not block later mutations")
    func rejections() throws {
        let p = try plan([
            mutation(1, "nope"),
            mutation(2, "a1", .read, .number(1)),
            mutation(3, "a1", .progress, .number(1.5)),
            mutation(4, "a1", .progress, .unsupported("the string \"x\"")),
            mutation(5, "a1", .progress, .number(0.5)),
        ])
        #expect(p.results.map(\.outcome) == [.rejected, .rejected, .rejected, .rejected, .applied])
        #expect(p.results[0].reason?.contains("unknown article") == true)
        #expect(p.lastMutationId == 5)
    }

    @Test("a device bound to another user is refused")
    func deviceBinding() {
        let context = PushContext(deviceOwner: 2, lastMutationId: 0, articles: ["a1": .live], states: [:])
        #expect(throws: SyncError.self) { try plan([mutation(1)], context: context, user: 1) }
    }

    @Test("an HLC too far ahead is clamped to server time, applied and logged as clock_skew")
    func clockSkew() throws {
        let p = try plan([mutation(1, wall: now + 3 * 86_400_000)])
        #expect(p.results[0].outcome == .applied)
        let logged = try #require(p.conflicts.first)
        #expect(logged.conflict.rule == .clockSkew)
        #expect(logged.conflict.winner.hlc.wall == now)
        #expect(logged.conflict.loser?.hlc.wall == now + 3 * 86_400_000)
        #expect(p.changedStates["a1"]?.read?.write.hlc.wall == now)
        #expect(p.results[0].conflictIndex == 0)
    }

    @Test("an HLC within the skew bound is kept as stamped")
    func smallSkewKept() throws {
        let p = try plan([mutation(1, wall: now + 60_000)])
        #expect(p.conflicts.isEmpty)
        #expect(p.changedStates["a1"]?.read?.write.hlc.wall == now + 60_000)
    }

    @Test("state written for a deleted article is kept and logged as article_deleted")
    func deletedArticle() throws {
        let p = try plan([mutation(1, "gone", .bookmarked, .bool(true))])
        #expect(p.results[0].outcome == .applied)
        #expect(p.conflicts.first?.conflict.rule == .articleDeleted)
        #expect(p.changedStates["gone"]?.isBookmarked == true)
    }

    @Test("each applied write bumps the row version and remembers the version it was set at")
    func versions() throws {
        let p = try plan([mutation(1, "a1", .read), mutation(2, "a1", .bookmarked), mutation(3, "a1", .progress, .number(0.3))])
        let state = try #require(p.changedStates["a1"])
        #expect(state.version == 3)
        #expect(state.read?.setAtVersion == 1 && state.bookmarked?.setAtVersion == 2 && state.progress?.setAtVersion == 3)
        #expect(p.changeOrder == ["a1"])
    }

    @Test("a losing concurrent write is superseded and points at its conflict")
    func superseded() throws {
        var existing = UserArticleState(articleId: "a1", version: 1)
        existing.bookmarked = FieldCell(write: FieldWrite(value: .bool(true), hlc: HLC(wall: 1, counter: 0), deviceId: "tablet", mutationId: 3),
                                        setAtVersion: 1)
        let context = PushContext(deviceOwner: nil, lastMutationId: 0, articles: ["a1": .live], states: ["a1": existing])
        let p = try plan([mutation(1, "a1", .bookmarked, .bool(false), base: 0)], context: context)
        #expect(p.results[0].outcome == .superseded)
        #expect(p.results[0].conflictIndex == 0)
        #expect(p.conflicts[0].conflict.rule == .addWins)
        #expect(p.changedStates.isEmpty)
    }
}

@Suite("Timestamps and explanations")
struct TimestampTests {
    @Test("ISO-8601 dates parse with Z, offsets and fractions, and format canonically")
    func canonical() {
        #expect(Timestamp.canonical("2026-11-01T12:00:00Z") == "2026-11-01T12:00:00Z")
        #expect(Timestamp.canonical("2026-11-01T14:00:00+02:00") == "2026-11-01T12:00:00Z")
        #expect(Timestamp.canonical("2026-11-01T12:00:00.250Z") == "2026-11-01T12:00:00.250Z")
        #expect(Timestamp.canonical("yesterday") == nil)
        #expect(Timestamp.canonical("2026-13-01T12:00:00Z") == nil)
        #expect(Timestamp.format(Timestamp.date(millis: 1_764_000_000_001)) == "2025-11-24T16:00:00.001Z")
    }

    @Test("a bookmark conflict is explained in words naming both devices and the add-wins rule")
    func explanation() {
        let c = ConflictDTO(
            id: 1, user: "alice", articleId: "a1", field: .bookmarked, rule: .addWins,
            winner: WriteDTO(FieldWrite(value: .bool(true), hlc: HLC(wall: 1_764_000_000_000, counter: 0), deviceId: "ipad", mutationId: 4)),
            loser: WriteDTO(FieldWrite(value: .bool(false), hlc: HLC(wall: 1_764_000_100_000, counter: 0), deviceId: "phone", mutationId: 9)),
            baseVersion: 2, detectedAt: "2026-11-28T08:00:00Z")
        let text = c.explanation
        #expect(text.contains("ipad bookmarked it"))
        #expect(text.contains("phone removed the bookmark on it"))
        #expect(text.contains("adding wins over removing"))
    }
}
