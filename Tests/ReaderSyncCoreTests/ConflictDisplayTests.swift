import Foundation
import Testing
@testable import ReaderSyncCore

/// Every value the protocol accepts, shown without trapping (issue 10 item 5), and clock
/// adjustments shown as what they are (item 7).
@Suite("Conflict display")
struct ConflictDisplayTests {
    /// The wall of issue 10 item 5: accepted, clamped and logged, then `conflicts show 1` trapped.
    static let issueWall: Int64 = 9_223_372_036_854_775_296
    static let extremeWalls: [Int64] = [0, 1, 1_764_000_000_000, 253_402_300_799_999, 253_402_300_800_000, issueWall, .max]

    func write(_ value: FieldValue = .bool(true), wall: Int64, counter: Int64 = 0, device: String = "phone",
               mutation: Int64 = 1) -> WriteDTO {
        WriteDTO(FieldWrite(value: value, hlc: HLC(wall: wall, counter: counter), deviceId: device, mutationId: mutation))
    }

    func entry(_ rule: ConflictRule, winner: WriteDTO, loser: WriteDTO?, field: StateField = .read) -> ConflictDTO {
        ConflictDTO(id: 1, user: "alice", articleId: "story", field: field, rule: rule, winner: winner, loser: loser,
                    baseVersion: 0, detectedAt: "2025-11-24T16:00:00Z")
    }

    @Test("wall clock text: calendar dates to 9999-12-31, raw milliseconds with a note beyond, over all of Int64")
    func wallText() {
        #expect(Timestamp.displayText(millis: 0) == "1970-01-01 00:00:00 UTC")
        #expect(Timestamp.displayText(millis: -1) == "1969-12-31 23:59:59.999 UTC")
        #expect(Timestamp.displayText(millis: 1_764_000_000_005) == "2025-11-24 16:00:00.005 UTC")
        #expect(Timestamp.displayText(millis: 951_782_400_000) == "2000-02-29 00:00:00 UTC")
        #expect(Timestamp.displayText(millis: 253_402_300_799_999) == "9999-12-31 23:59:59.999 UTC")
        #expect(Timestamp.displayText(millis: 253_402_300_800_000) == "wall 253402300800000 ms (beyond any date)")
        #expect(Timestamp.displayText(millis: -62_135_596_800_000) == "0001-01-01 00:00:00 UTC")
        #expect(Timestamp.displayText(millis: -62_135_596_800_001) == "wall -62135596800001 ms (before any date)")
        #expect(Timestamp.displayText(millis: Self.issueWall) == "wall 9223372036854775296 ms (beyond any date)")
        #expect(Timestamp.displayText(millis: .max) == "wall 9223372036854775807 ms (beyond any date)")
        #expect(Timestamp.displayText(millis: .min) == "wall -9223372036854775808 ms (before any date)")
    }

    @Test("wall clock text agrees with Foundation's ISO-8601 formatting on seeded random instants from 1970 to 9999")
    func wallTextMatchesFoundation() {
        var rng = SeededRandom(seed: 105)
        for _ in 0..<2000 {
            let millis = Int64(rng.int(in: 0...Int(Timestamp.displayableMillis.upperBound)))
            let iso = Timestamp.format(Timestamp.date(millis: millis))
            let expected = iso.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " UTC")
            #expect(Timestamp.displayText(millis: millis) == expected, "\(millis)")
        }
    }

    @Test("a clock_skew entry with the issue's wall (9223372036854775296) explains itself without trapping")
    func issueWallExplained() {
        let server = write(wall: 1_764_000_000_000)
        let device = write(wall: Self.issueWall)
        let conflict = entry(.clockSkew, winner: server, loser: device)
        #expect(conflict.explanation == "alice's device phone marked article story read (mutation 1) with its clock "
            + "292471152 years ahead of the server's. The change was applied, but ordered by the server's time "
            + "(2025-11-24 16:00:00 UTC) instead of the device's (wall 9223372036854775296 ms (beyond any date)).")
        #expect(conflict.note == "clock adjusted: device stamped wall 9223372036854775296 ms (beyond any date), "
            + "server time 2025-11-24 16:00:00 UTC, ahead by 292471152 years")
        #expect(conflict.clockAdjustment == ClockAdjustment(deviceHlc: device.hlc, serverHlc: server.hlc))
        #expect(conflict.clockAdjustment?.aheadMillis == Self.issueWall - 1_764_000_000_000)
        #expect(conflict.kind == .clockAdjustment && conflict.lostWrite == nil)
    }

    @Test("every rule explains and notes every extreme wall, counter, mutation id and progress without trapping")
    func extremesEverywhere() {
        let counters: [Int64] = [0, 1, .max]
        let values: [(StateField, FieldValue)] = [(.read, .bool(false)), (.progress, .number(0)), (.progress, .number(1)),
                                                  (.progress, .number(.nan)), (.progress, .number(.infinity)),
                                                  (.progress, .number(1e300)), (.bookmarked, .unsupported("null"))]
        for rule in ConflictRule.allCases {
            for winnerWall in Self.extremeWalls {
                for loserWall in Self.extremeWalls + [Int64.min] {
                    for counter in counters {
                        for (field, value) in values {
                            let w = write(value, wall: winnerWall, counter: counter, device: "tablet", mutation: .max)
                            let l = write(value, wall: loserWall, counter: counter, mutation: .max)
                            for conflict in [entry(rule, winner: w, loser: l, field: field), entry(rule, winner: w, loser: nil, field: field)] {
                                #expect(!conflict.explanation.isEmpty)
                                _ = conflict.note
                                _ = conflict.clockAdjustment
                            }
                        }
                    }
                }
            }
        }
        #expect(ConflictDTO.duration(millis: .min) == "292471208 years")
        #expect(ConflictDTO.duration(millis: .max) == "292471208 years")
        #expect(ConflictDTO.duration(millis: 90_000) == "90 seconds")
        #expect(ClockAdjustment(deviceHlc: HLC(wall: .max, counter: 0), serverHlc: HLC(wall: .min, counter: 0)).aheadMillis == .max)
        #expect(ClockAdjustment(deviceHlc: HLC(wall: .min, counter: 0), serverHlc: HLC(wall: .max, counter: 0)).aheadMillis == .min)
        #expect(ConflictDTO.clock(HLC(wall: .max, counter: .max)) == "wall 9223372036854775807 ms (beyond any date) +9223372036854775807")
    }

    @Test("only real conflicts have a lost write; clock adjustments and deletion notices carry a note instead")
    func kinds() {
        let a = write(wall: 1_764_000_000_000, device: "tablet"), b = write(.bool(false), wall: 1_764_000_500_000)
        #expect(entry(.lastWriterWins, winner: b, loser: a).lostWrite == a)
        #expect(entry(.addWins, winner: a, loser: b).note == nil)
        #expect(entry(.restoreReplay, winner: b, loser: a).kind == .conflict)
        let deleted = entry(.articleDeleted, winner: a, loser: b)
        #expect(deleted.kind == .notice && deleted.lostWrite == nil && deleted.clockAdjustment == nil)
        #expect(deleted.note == "article deleted: change kept for when it returns")
        let skew = entry(.clockSkew, winner: a, loser: write(wall: 1_764_000_420_000))
        #expect(skew.note == "clock adjusted: device stamped 2025-11-24 16:07:00 UTC, server time 2025-11-24 16:00:00 UTC, ahead by 7 minutes")
        #expect(skew.explanation.contains("with its clock 7 minutes ahead of the server's"))
    }

    @Test("on the wire an entry carries kind and, for clock_skew, clockAdjustment; decoding ignores both and old bodies still decode")
    func wire() throws {
        let skew = entry(.clockSkew, winner: write(wall: 1_764_000_000_000), loser: write(wall: Self.issueWall, counter: .max))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let object = try #require(try JSONSerialization.jsonObject(with: encoder.encode(skew)) as? [String: Any])
        #expect(object["kind"] as? String == "clock_adjustment")
        let adjustment = try #require(object["clockAdjustment"] as? [String: Any])
        #expect((adjustment["aheadMillis"] as? NSNumber)?.int64Value == Self.issueWall - 1_764_000_000_000)
        #expect(try JSONDecoder().decode(ConflictDTO.self, from: encoder.encode(skew)) == skew)

        let plain = entry(.addWins, winner: write(wall: 1), loser: nil)
        let plainObject = try #require(try JSONSerialization.jsonObject(with: encoder.encode(plain)) as? [String: Any])
        #expect(plainObject["kind"] as? String == "conflict" && plainObject["clockAdjustment"] == nil && plainObject["loser"] == nil)

        // A body from a server before these fields decodes as before.
        let old = #"{"id":3,"user":"a","articleId":"x","field":"read","rule":"clock_skew","winner":{"value":true,"hlc":{"wall":5,"counter":0},"deviceId":"d","mutationId":1},"baseVersion":0,"detectedAt":"2025-11-24T16:00:00Z"}"#
        let decoded = try JSONDecoder().decode(ConflictDTO.self, from: Data(old.utf8))
        #expect(decoded.kind == .clockAdjustment && decoded.clockAdjustment?.aheadMillis == 0)
    }

    @Test("a rule filter takes repeated and comma-separated names and refuses an unknown one, listing the valid ones")
    func ruleFilter() throws {
        #expect(try ConflictRule.parseList([]) == [])
        #expect(try ConflictRule.parseList(["clock_skew"]) == [.clockSkew])
        #expect(try ConflictRule.parseList(["add_wins,last_writer_wins", "clock_skew", ""]) == [.addWins, .lastWriterWins, .clockSkew])
        // Exactly the OpenAPI document's grammar: no spaces, no empty item between commas.
        for bad in [" add_wins", "add_wins ,article_deleted", "add_wins,", ",add_wins", "add_wins,,clock_skew"] {
            #expect(throws: SyncError.self, "\(bad)") { try ConflictRule.parseList([bad]) }
        }
        let error = try #require(throws: SyncError.self) { try ConflictRule.parseList(["clock_skew,skew"]) }
        #expect(error.code == .invalidRequest)
        #expect(error.message == "unknown rule skew; valid rules are last_writer_wins, add_wins, clock_skew, article_deleted, restore_replay")
    }
}
