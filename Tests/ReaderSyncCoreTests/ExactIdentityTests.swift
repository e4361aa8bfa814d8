import ReaderSyncCore
import Testing
@testable import ReaderSyncCore

/// Issue 10, item 1: identifiers are compared by their bytes, as SQLite compares them, never by
/// Swift's canonical equivalence.
@Suite("Identity is exact bytes in the merge rules")
struct ExactIdentityTests {
    static let precomposed = "caf\u{E9}"      // é as U+00E9
    static let decomposed = "cafe\u{301}"     // e + U+0301 COMBINING ACUTE ACCENT

    @Test("ExactText tells canonically equivalent strings apart, hashes and orders them by bytes")
    func exactText() {
        #expect(Self.precomposed == Self.decomposed)  // what Swift does, and why ExactText exists
        #expect(Self.precomposed.exact != Self.decomposed.exact)
        #expect(Set([Self.precomposed.exact, Self.decomposed.exact]).count == 2)
        #expect([Self.precomposed.exact: 1, Self.decomposed.exact: 2].count == 2)
        // SQLite BINARY order: 'e' (0x65) before 0xC3.
        #expect(Self.decomposed.exact < Self.precomposed.exact)
        #expect(!(Self.precomposed.exact < Self.decomposed.exact))
        #expect("ab".exact < "abc".exact && "abc".exact < "abd".exact)
        // U+212A KELVIN SIGN is canonically equivalent to ASCII K.
        #expect("\u{212A}" == "K" && !"\u{212A}".isExactly("K"))
        #expect(Optional<String>.none.isExactly(nil) && !Optional("K").isExactly(nil))
    }

    @Test("the HLC tie-break orders device ids that differ only in normalization, one way only")
    func hlcTieBreak() {
        let stamp = HLC(wall: 1_000, counter: 0)
        let a = HLC.orders(stamp, before: stamp, Self.precomposed, Self.decomposed)
        let b = HLC.orders(stamp, before: stamp, Self.decomposed, Self.precomposed)
        #expect(a != b, "exactly one write must win a tie")
        #expect(b)
    }

    @Test("a write from a device whose id is only canonically equal is concurrent, not the same device's")
    func mergeRulesDevice() {
        let current = FieldCell(write: FieldWrite(value: .bool(true), hlc: HLC(wall: 2_000, counter: 0),
                                                  deviceId: "phon\u{E9}", mutationId: 1), setAtVersion: 1)
        let incoming = FieldWrite(value: .bool(false), hlc: HLC(wall: 1_000, counter: 0),
                                  deviceId: "phone\u{301}", mutationId: 1)
        // Unseen (base 0) and not the same device: add-wins keeps the bookmark.
        let decision = MergeRules.decide(field: .bookmarked, current: current, incoming: incoming, baseVersion: 0)
        #expect(!decision.applies)
        #expect(decision.conflict?.rule == .addWins)
    }

    @Test("a push naming two canonically equivalent articles changes two states (the issue's input)")
    func planner() throws {
        let context = PushContext(deviceOwner: nil, lastMutationId: 0,
                                  articles: [Self.precomposed.exact: .live, Self.decomposed.exact: .live], states: [:])
        let plan = try PushPlanner.plan(
            userId: 1, deviceId: "phone",
            mutations: [
                Mutation(id: 1, articleId: Self.precomposed, field: .read, value: .bool(true), hlc: HLC(wall: 1, counter: 0), baseVersion: 0),
                Mutation(id: 2, articleId: Self.decomposed, field: .bookmarked, value: .bool(true), hlc: HLC(wall: 2, counter: 0), baseVersion: 0),
            ],
            context: context, nowMillis: 10, maxClockSkewMillis: 1_000)
        #expect(plan.results.map(\.outcome) == [.applied, .applied])
        #expect(plan.changeOrder == [Self.precomposed.exact, Self.decomposed.exact])
        let first = try #require(plan.changedStates[Self.precomposed.exact])
        let second = try #require(plan.changedStates[Self.decomposed.exact])
        #expect(first.isRead && !first.isBookmarked && first.articleId.isExactly(Self.precomposed))
        #expect(!second.isRead && second.isBookmarked && second.articleId.isExactly(Self.decomposed))
        #expect(first.version == 1 && second.version == 1)
    }
}

@Suite("The push planner on extreme clock values")
struct PushPlannerExtremeClockTests {
    @Test("a server clock and skew bound whose sum overflows Int64 clamp nothing and do not trap")
    func saturatingSkewBound() throws {
        let context = PushContext(deviceOwner: nil, lastMutationId: 0, articles: ["a1": .live], states: [:])
        let plan = try PushPlanner.plan(
            userId: 1, deviceId: "phone",
            mutations: [Mutation(id: 1, articleId: "a1", field: .read, value: .bool(true), hlc: HLC(wall: .max, counter: .max), baseVersion: 0)],
            context: context, nowMillis: .max - 10, maxClockSkewMillis: .max)
        #expect(plan.results.map(\.outcome) == [.applied])
        #expect(plan.conflicts.isEmpty)
    }
}
