import Foundation
import Logging
import PostgresNIO
@testable import ReaderSyncPostgres
import ReaderSyncTestSupport
import Testing

/// The PostgreSQL push binds its rows as binary arrays encoded here (postgres-nio has no arrays
/// with NULL elements): what PostgreSQL's `unnest` reads back must be exactly what was appended.
@Suite("PostgreSQL push rows as binary arrays", .enabled(if: Backend.available.contains(.postgres)))
struct ColumnArrayTests {
    struct Rows: ColumnRows {
        var text = ColumnArray("t", of: String.self)
        var integer = ColumnArray("i", of: Int64.self)
        var double = ColumnArray("d", of: Double.self)
        var flag = ColumnArray("b", of: Bool.self)
        var columns: [ColumnArray] { [text, integer, double, flag] }
    }

    static func readBack(_ rows: Rows) async throws -> [(String?, Int64?, Double?, Bool?, Int64)] {
        let postgres = try await PostgresTestStore()
        var binds = PostgresBindings()
        binds.append(Int64(7))
        for column in rows.columns { binds.append(column) }
        let sql = "SELECT r.t, r.i, r.d, r.b, r.ord FROM \(Rows.unnest(as: "r", from: 2)) WHERE $1 = 7 ORDER BY r.ord"
        #expect(sql.contains("unnest($2::text[], $3::bigint[], $4::double precision[], $5::boolean[]) WITH ORDINALITY AS r(t, i, d, b, ord)"))
        var result: [(String?, Int64?, Double?, Bool?, Int64)] = []
        try await postgres.store.client.withConnection { connection in
            let logger = Logger(label: "test.column-array")
            for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
                .decode((String?, Int64?, Double?, Bool?, Int64).self) {
                result.append(row)
            }
        }
        return result
    }

    @Test("strings with quotes, backslashes, control characters and emoji, extreme integers, doubles bit for bit, booleans and NULLs read back exactly")
    func roundTrip() async throws {
        let texts: [String?] = ["plain", "quote \" backslash \\ comma , brace {}", "control \u{1}\u{1F}\t\n", "emoji 📱 and e\u{301}", "", nil]
        let integers: [Int64?] = [.min, -1, 0, nil, 1 << 53 + 1, .max]
        let doubles: [Double?] = [-0.0, 0.30000000000000004, .leastNonzeroMagnitude, 1.0.nextDown, nil, 1.0 / 3]
        let flags: [Bool?] = [true, nil, false, true, false, nil]
        var rows = Rows()
        for index in texts.indices {
            rows.text.append(texts[index])
            rows.integer.append(integers[index])
            rows.double.append(doubles[index])
            rows.flag.append(flags[index])
        }
        #expect(rows.count == texts.count)
        let read = try await Self.readBack(rows)
        try #require(read.count == texts.count)
        for (index, row) in read.enumerated() {
            #expect(row.0.map { Array($0.utf8) } == texts[index].map { Array($0.utf8) })
            #expect(row.1 == integers[index])
            #expect(row.2?.bitPattern == doubles[index]?.bitPattern, "\(String(describing: doubles[index])) came back as \(String(describing: row.2))")
            #expect(row.3 == flags[index])
            #expect(row.4 == Int64(index + 1))
        }
    }

    @Test("columns without rows are empty arrays: no row, no error")
    func empty() async throws {
        #expect(Rows().count == 0)
        #expect(try await Self.readBack(Rows()).isEmpty)
    }
}
