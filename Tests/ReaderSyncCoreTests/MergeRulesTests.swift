import Testing
@testable import ReaderSyncCore

@Suite("Merge rules")
struct MergeRulesTests {
    func cell(_ value: FieldValue, wall: Int64, counter: Int64 = 0, device: String, mutation: Int64 = 1, at version: Int64) -> FieldCell {
        FieldCell(write: FieldWrite(value: value, hlc: HLC(wall: wall, counter: counter), deviceId: device, mutationId: mutation),
                  setAtVersion: version)
    }

    func write(_ value: FieldValue, wall: Int64, counter: Int64 = 0, device: String, mutation: Int64 = 7) -> FieldWrite {
        FieldWrite(value: value, hlc: HLC(wall: wall, counter: counter), deviceId: device, mutationId: mutation)
    }

    @Test("a first write to a field applies with no conflict")
    func firstWrite() {
        let d = MergeRules.decide(field: .read, current: nil, incoming: write(.bool(true), wall: 1, device: "a"), baseVersion: 0)
        #expect(d.applies && d.conflict == nil)
    }

    @Test("a write that has seen the current value applies even with an older clock")
    func causalWriteWinsWhateverTheClock() {
        let current = cell(.bool(true), wall: 2_000, device: "a", at: 3)
        let d = MergeRules.decide(field: .read, current: current, incoming: write(.bool(false), wall: 1_000, device: "b"), baseVersion: 3)
        #expect(d.applies && d.conflict == nil)
    }

    @Test("a device overwriting its own value is causal")
    func sameDeviceIsCausal() {
        let current = cell(.bool(true), wall: 2_000, device: "a", at: 5)
        let d = MergeRules.decide(field: .bookmarked, current: current, incoming: write(.bool(false), wall: 1, device: "a"), baseVersion: 0)
        #expect(d.applies && d.conflict == nil)
    }

    @Test("concurrent read writes: the newer HLC wins and the older is logged as loser")
    func lastWriterWins() throws {
        let current = cell(.bool(true), wall: 1_000, device: "a", at: 2)
        let newer = write(.bool(false), wall: 2_000, device: "b")
        let d1 = MergeRules.decide(field: .read, current: current, incoming: newer, baseVersion: 1)
        #expect(d1.applies)
        let c1 = try #require(d1.conflict)
        #expect(c1.rule == .lastWriterWins && c1.winner == newer && c1.loser == current.write)

        let older = write(.bool(false), wall: 500, device: "b")
        let d2 = MergeRules.decide(field: .read, current: current, incoming: older, baseVersion: 1)
        #expect(!d2.applies)
        #expect(d2.conflict?.winner == current.write && d2.conflict?.loser == older)
    }

    @Test("equal wall and counter: the larger device id wins, on every side")
    func tieBrokenByDeviceId() {
        let current = cell(.number(0.2), wall: 1_000, counter: 3, device: "b", at: 2)
        let fromA = MergeRules.decide(field: .progress, current: current, incoming: write(.number(0.9), wall: 1_000, counter: 3, device: "a"), baseVersion: 0)
        #expect(!fromA.applies)
        let currentA = cell(.number(0.9), wall: 1_000, counter: 3, device: "a", at: 2)
        let fromB = MergeRules.decide(field: .progress, current: currentA, incoming: write(.number(0.2), wall: 1_000, counter: 3, device: "b"), baseVersion: 0)
        #expect(fromB.applies)
    }

    @Test("the counter orders writes with the same wall time")
    func counterOrders() {
        let current = cell(.bool(true), wall: 1_000, counter: 5, device: "z", at: 1)
        let d = MergeRules.decide(field: .read, current: current, incoming: write(.bool(false), wall: 1_000, counter: 6, device: "a"), baseVersion: 0)
        #expect(d.applies)
    }

    @Test("concurrent bookmark writes: adding wins whatever the clocks")
    func addWins() {
        let bookmarked = cell(.bool(true), wall: 1_000, device: "a", at: 2)
        let lateRemove = MergeRules.decide(field: .bookmarked, current: bookmarked, incoming: write(.bool(false), wall: 9_000, device: "b"), baseVersion: 1)
        #expect(!lateRemove.applies)
        #expect(lateRemove.conflict?.rule == .addWins && lateRemove.conflict?.winner.value == .bool(true))

        let removed = cell(.bool(false), wall: 9_000, device: "a", at: 2)
        let earlyAdd = MergeRules.decide(field: .bookmarked, current: removed, incoming: write(.bool(true), wall: 1, device: "b"), baseVersion: 1)
        #expect(earlyAdd.applies)
        #expect(earlyAdd.conflict?.rule == .addWins && earlyAdd.conflict?.loser?.value == .bool(false))
    }

    @Test("concurrent writes that agree are not conflicts")
    func agreeingWrites() {
        let current = cell(.bool(true), wall: 1_000, device: "a", at: 2)
        let newer = MergeRules.decide(field: .read, current: current, incoming: write(.bool(true), wall: 2_000, device: "b"), baseVersion: 0)
        #expect(newer.conflict == nil && newer.applies)
        let older = MergeRules.decide(field: .read, current: current, incoming: write(.bool(true), wall: 500, device: "b"), baseVersion: 0)
        #expect(older.conflict == nil && !older.applies)
    }

    @Test("the rule table names a rule for every field")
    func ruleTable() {
        for field in StateField.allCases {
            #expect(MergeRules.table.contains { $0.rule == field.concurrentRule && $0.fields.contains(field) })
        }
        #expect(StateField.bookmarked.concurrentRule == .addWins)
        #expect(StateField.read.concurrentRule == .lastWriterWins)
        #expect(StateField.progress.concurrentRule == .lastWriterWins)
    }
}

@Suite("Hybrid logical clock")
struct HLCTests {
    @Test("tick follows physical time and counts within one millisecond")
    func tick() {
        var clock = HybridClock()
        #expect(clock.tick(physicalMillis: 100) == HLC(wall: 100, counter: 0))
        #expect(clock.tick(physicalMillis: 100) == HLC(wall: 100, counter: 1))
        #expect(clock.tick(physicalMillis: 50) == HLC(wall: 100, counter: 2))
        #expect(clock.tick(physicalMillis: 200) == HLC(wall: 200, counter: 0))
    }

    @Test("a change made after observing a remote stamp orders after it, even with a slow clock")
    func observe() {
        var clock = HybridClock()
        clock.observe(HLC(wall: 10_000, counter: 4))
        let next = clock.tick(physicalMillis: 1_000)
        #expect(next > HLC(wall: 10_000, counter: 4))
    }
}
