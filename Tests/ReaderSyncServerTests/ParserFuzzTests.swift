import Foundation
import GRDB
import ReaderSyncCore
@testable import ReaderSyncSQLiteStore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// Seeded random and mutated inputs for every parser we own: no crash, no hang, a clear error.
@Suite("Parsers under seeded random and mutated input")
struct ParserFuzzTests {
    /// Flips, deletes and inserts bytes, favouring the ones that matter to the format.
    static func mutate(_ input: [UInt8], _ random: inout SeededRandom, alphabet: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0..<random.int(in: 1...6) {
            let position = random.int(in: 0...bytes.count)
            switch random.int(in: 0...4) {
            case 0 where position < bytes.count: bytes[position] = random.pick(alphabet)
            case 1 where position < bytes.count: bytes[position] ^= UInt8(1 << random.int(in: 0...7))
            case 2 where position < bytes.count: bytes.removeSubrange(position..<min(bytes.count, position + random.int(in: 1...8)))
            case 3: bytes.insert(contentsOf: (0..<random.int(in: 1...8)).map { _ in random.pick(alphabet) }, at: position)
            default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
            }
        }
        return bytes
    }

    @Test("cursors: mutated, truncated and random ones are refused as invalid_cursor or reset_required; real ones decode", arguments: [1, 2, 3] as [UInt64])
    func cursors(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let codec = CursorCodec(secret: Array("a secret of thirty-two bytes....".utf8), epoch: "0123456789abcdef")
        let alphabet = Array("ABCDEFabcdef0123456789-_.:=+/ \u{0}".utf8) + [0xFF, 0xE2, 0x82]
        var refused = 0
        for _ in 0..<3_000 {
            // Both cursor versions: sequence alone (SQLite) and transaction then sequence (PostgreSQL).
            let seq = Int64(random.int(in: 0...Int(Int32.max)))
            let position = FeedPosition(transaction: random.chance(0.5) ? UInt64(random.int(in: 1...Int(Int32.max))) : 0, seq: seq)
            let real = codec.encode(position)
            #expect((try? codec.decode(real)) == position)
            let bytes = random.chance(0.2)
                ? (0..<random.int(in: 0...700)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                : Self.mutate(Array(real.utf8), &random, alphabet: alphabet)
            let text = String(decoding: bytes, as: UTF8.self)
            do {
                let decoded = try codec.decode(text)
                // A mutation that left the cursor valid (e.g. base64 padding bits) must still mean the same position.
                #expect(text == real || decoded == position, "a mutated cursor decoded to another position: \(text)")
            } catch {
                #expect(error.code == .invalidCursor || error.code == .resetRequired)
                #expect(!error.message.isEmpty)
                refused += 1
            }
        }
        #expect(refused > 2_500)
    }

    @Test("JSON Lines ingest: every mutated line is stored or refused with its line number and a message", arguments: [4, 5] as [UInt64])
    func jsonLines(seed: UInt64) async throws {
        let h = try await Harness()
        var random = SeededRandom(seed: seed)
        let alphabet = Array(#"{}[]":,\ntrue false null 0123456789.eE-"#.utf8) + [0x00, 0xFF, 0xC3, 0xA9, 0x0D, 0x0A, 0x5C]
        for _ in 0..<20 {
            var lines: [[UInt8]] = []
            for i in 0..<50 {
                let line = Array(Harness.articleLine(id: "fuzz-\(random.int(in: 0...99))", title: "Title \(i)").utf8)
                lines.append(random.chance(0.7) ? Self.mutate(line, &random, alphabet: alphabet) : line)
            }
            let body = Array(lines.joined(separator: [0x0A]))
            let lineCount = JSONLinesReader(body).reduce(0) { count, _ in count + 1 }
            let report = try await h.service.ingest(jsonLines: body)
            #expect(report.inserted + report.updated + report.unchanged + report.deleted + report.rejected <= lineCount)
            #expect(report.errors.count == report.rejected)
            for problem in report.errors {
                #expect((1...lineCount).contains(problem.line) && !problem.message.isEmpty)
            }
        }
        let integrity = try await h.sqlite.dbPool.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        #expect(integrity == ["ok"])
    }

    @Test("dates: random fields are accepted exactly when Foundation's calendar has them, at the same instant; nothing rolls over", arguments: [8, 9] as [UInt64])
    func dates(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        // The oracle: Foundation's Gregorian calendar, which is independent of Timestamp's arithmetic.
        // It switches to the Julian calendar before 1582-10-15, so the years start after that.
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        func pad(_ value: Int, _ width: Int) -> String {
            String(repeating: "0", count: max(0, width - String(value).count)) + String(value)
        }
        var accepted = 0
        for _ in 0..<10_000 {
            let year = random.int(in: 1600...9999), month = random.int(in: 0...13), day = random.int(in: 0...32)
            let hour = random.int(in: 0...25), minute = random.int(in: 0...61), second = random.int(in: 0...61)
            let fractionDigits = random.chance(0.5) ? 0 : random.int(in: 1...9)
            let fraction = (0..<fractionDigits).map { _ in String(random.int(in: 0...9)) }.joined()
            let offsetHour = random.int(in: 0...25), offsetMinute = random.int(in: 0...61), sign = random.pick(["+", "-"])
            let zulu = random.chance(0.4)
            var text = "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
            if fractionDigits > 0 { text += "." + fraction }
            text += zulu ? "Z" : "\(sign)\(pad(offsetHour, 2)):\(pad(offsetMinute, 2))"

            let components = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
            let inCalendar = (1...12).contains(month) && day >= 1
                && calendar.range(of: .day, in: .month, for: calendar.date(from: DateComponents(year: year, month: month, day: 1))!)!.contains(day)
            let valid = inCalendar && hour <= 23 && minute <= 59 && second <= 59 && (zulu || (offsetHour <= 23 && offsetMinute <= 59))
            guard valid else {
                #expect(Timestamp.parse(text) == nil, "accepted \(text), which does not exist")
                continue
            }
            accepted += 1
            let date = try #require(Timestamp.parse(text), "refused \(text), which exists")
            let offsetMillis = zulu ? 0 : (sign == "-" ? -1 : 1) * (offsetHour * 60 + offsetMinute) * 60_000
            let fractionMillis = fractionDigits == 0 ? 0 : Int((fraction + "00").prefix(3))!
            let expected = Int64(try #require(calendar.date(from: components)).timeIntervalSince1970) * 1000
                + Int64(fractionMillis - offsetMillis)
            #expect(Timestamp.millis(date) == expected, "\(text)")
            // The canonical text parses back to the same instant, and a UTC text with whole seconds is its own canonical form.
            let canonical = Timestamp.format(date)
            #expect(Timestamp.parse(canonical).map(Timestamp.millis) == expected, "\(text) → \(canonical)")
            if zulu && fractionDigits == 0 { #expect(canonical == text) }
        }
        #expect(accepted > 500)
    }

    @Test("plain-text articles: random and mutated texts give an article or a clear invalid_request", arguments: [6, 7] as [UInt64])
    func plainText(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let fixture = try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/scraped-article.txt"))
        let alphabet = Array("\n\r \t\u{0}abc.MORE like this\u{2028}".utf8) + [0xFF, 0xF0, 0x9F]
        for round in 0..<1_500 {
            let bytes = round % 5 == 0
                ? (0..<random.int(in: 0...400)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                : Self.mutate(Array(fixture), &random, alphabet: alphabet)
            do {
                let article = try PlainTextArticle.parse(String(decoding: bytes, as: UTF8.self), fileName: "fuzz.txt",
                                                         date: Date(timeIntervalSince1970: 1_764_000_000))
                #expect(article.id == "fuzz.txt" && !article.title.isEmpty && !article.body.isEmpty)
            } catch let error as SyncError {
                #expect(error.code == .invalidRequest && !error.message.isEmpty)
            }
        }
    }
}
