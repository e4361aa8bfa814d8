import Foundation
import ReaderSyncCore
@testable import ReaderSyncPostgres
import Testing

/// The PostgreSQL push's rows are JSON written by hand (for speed): what a JSON parser reads back
/// must be exactly what was written.
@Suite("PostgreSQL push rows as JSON")
struct PushRowsTests {
    @Test("strings with quotes, backslashes, control characters and emoji, extreme integers and doubles parse back exactly")
    func roundTrip() throws {
        let ids = ["plain", "quote \" backslash \\ slash /", "control \u{1}\u{1F}\t\n", "emoji 📱 and e\u{301}", ""]
        let doubles: [Double] = [0, -0.0, 0.1, 0.30000000000000004, .leastNonzeroMagnitude, .leastNormalMagnitude, 1.0.nextDown, 1e-5, 1.0 / 3]
        let integers: [Int64] = [.min, -1, 0, 1, 1 << 53 + 1, .max]
        var rows = JSONRows()
        for (index, id) in ids.enumerated() {
            rows.beginObject()
            rows.add("id", id)
            rows.add("int", integers[index % integers.count])
            rows.add("double", doubles[index % doubles.count])
            rows.add("flag", index.isMultiple(of: 2))
            rows.endObject()
        }
        for (index, double) in doubles.enumerated() {
            rows.beginObject()
            rows.add("double", double)
            rows.add("int", integers[index % integers.count])
            rows.endObject()
        }
        let text = rows.finish()
        // Doubles travel as strings, read by PostgreSQL's float8 input, correctly rounded, as
        // Swift's Double(String) reads them.
        struct Row: Decodable { var id: String?; var int: Int64?; var double: String?; var flag: Bool? }
        let parsed = try JSONDecoder().decode([Row].self, from: Data(text.utf8))
        #expect(parsed.count == ids.count + doubles.count)
        for (index, id) in ids.enumerated() {
            #expect(parsed[index].id.map { Array($0.utf8) } == Array(id.utf8))
            #expect(parsed[index].int == integers[index % integers.count])
            #expect(parsed[index].flag == index.isMultiple(of: 2))
        }
        for (index, double) in doubles.enumerated() {
            let value = try #require(parsed[ids.count + index].double.flatMap(Double.init))
            #expect(value.bitPattern == double.bitPattern, "\(double) came back as \(value)")
        }
        #expect(JSONRows().finish() == "[]")
    }
}
