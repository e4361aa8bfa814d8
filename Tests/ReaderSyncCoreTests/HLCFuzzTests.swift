import Foundation
import ReaderSyncCore
import Testing

@Suite("HLC under hostile stamps")
struct HLCFuzzTests {
    static let extremes: [Int64] = [0, 1, -1, .max, .max - 1, .min, .min + 1, 1_764_000_000_000]

    @Test("tick and observe never crash and never go backwards, whatever stamps are observed", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func clockNeverCrashes(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var clock = HybridClock()
        var previous = clock.last
        for _ in 0..<5_000 {
            let pick = { (r: inout SeededRandom) -> Int64 in
                r.chance(0.5) ? r.pick(Self.extremes) : Int64(bitPattern: r.next())
            }
            if random.chance(0.4) {
                clock.observe(HLC(wall: pick(&random), counter: pick(&random)))
                #expect(clock.last >= previous)
            } else {
                let stamp = clock.tick(physicalMillis: pick(&random))
                // Strictly later, unless the clock is pinned at the very last stamp.
                #expect(stamp > previous || previous == HLC(wall: .max, counter: .max))
            }
            previous = clock.last
        }
    }

    @Test("a stamp whose counter is spent moves the clock to the next millisecond")
    func spentCounter() {
        var clock = HybridClock(last: HLC(wall: 1_764_000_000_000, counter: .max))
        #expect(clock.tick(physicalMillis: 1_000) == HLC(wall: 1_764_000_000_001, counter: 0))
        var pinned = HybridClock(last: HLC(wall: .max, counter: .max))
        #expect(pinned.tick(physicalMillis: 0) == HLC(wall: .max, counter: .max))
    }

    @Test("HLC JSON that is mutated byte by byte decodes or throws DecodingError, never anything else", arguments: [11, 12, 13] as [UInt64])
    func mutatedJSON(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let seeds = [#"{"wall":1764000000000,"counter":3}"#, #"{"wall":9223372036854775807,"counter":-9223372036854775808}"#]
        let alphabet = Array(#"{}[]":,0123456789-+.eEtruefalsn \#u{0}"#.utf8) + [0xFF, 0xC3, 0x80]
        for _ in 0..<2_000 {
            var bytes = Array(random.pick(seeds).utf8)
            for _ in 0..<random.int(in: 1...4) {
                let position = random.int(in: 0...bytes.count)
                switch random.int(in: 0...2) {
                case 0 where position < bytes.count: bytes[position] = random.pick(alphabet)
                case 1 where position < bytes.count: bytes.remove(at: position)
                default: bytes.insert(random.pick(alphabet), at: position)
                }
            }
            do {
                _ = try JSONDecoder().decode(HLC.self, from: Data(bytes))
            } catch is DecodingError {
            } catch {
                Issue.record("unexpected error \(error) for \(String(decoding: bytes, as: UTF8.self))")
            }
        }
    }
}
