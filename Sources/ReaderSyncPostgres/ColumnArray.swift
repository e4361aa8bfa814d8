import NIOCore
import PostgresNIO

/// One column of the rows a statement writes: a one-dimensional PostgreSQL array in the binary
/// wire format whose elements may be NULL, built one element at a time. A statement takes its
/// columns apart side by side with `unnest($5::text[], $6::bigint[], …) WITH ORDINALITY`
/// (``ColumnRows/unnest(as:from:)``).
///
/// Written here because postgres-nio encodes a Swift `Array` only without NULL elements, and an
/// unwritten cell is NULL. The binary format is PostgreSQL's `array_recv`: the number of
/// dimensions (0 for an empty array), a has-NULLs flag, the element type's OID, then per dimension
/// its length and lower bound (1), then each element as a 32-bit byte count (-1 for NULL) and
/// the element's own binary form.
struct ColumnArray: PostgresDynamicTypeEncodable {
    /// The column's name in the `unnest` alias, e.g. `article_id`.
    let name: String
    /// The element type, one of `bigint`, `text`, `boolean`, `double precision`.
    let elementType: PostgresDataType
    let psqlType: PostgresDataType
    var psqlFormat: PostgresFormat { .binary }
    /// The number of elements appended.
    private(set) var count = 0
    private var hasNull = false
    private var elements = ByteBuffer()

    /// An empty column of `Element` values (`Int64`, `String`, `Bool` or `Double`).
    init<Element: PostgresArrayEncodable>(_ name: String, of _: Element.Type) {
        self.name = name
        self.elementType = Element.psqlType
        self.psqlType = Element.psqlArrayType
    }

    /// The SQL name of the element type, as the statement casts the parameter: `bigint[]`.
    var sqlElementType: String {
        switch elementType {
        case .int8: "bigint"
        case .text: "text"
        case .bool: "boolean"
        case .float8: "double precision"
        default: preconditionFailure("no SQL name for \(elementType)")
        }
    }

    /// Appends `value`, or NULL; `Element` is the type the column was made for.
    mutating func append<Element: PostgresNonThrowingEncodable>(_ value: Element?) {
        precondition(Element.psqlType == elementType, "a \(Element.self) in the \(elementType) column \(name)")
        count += 1
        guard let value else {
            hasNull = true
            elements.writeInteger(-1, as: Int32.self)
            return
        }
        let lengthIndex = elements.writerIndex
        elements.writeInteger(0, as: Int32.self)
        value.encode(into: &elements, context: .default)
        elements.setInteger(Int32(elements.writerIndex - lengthIndex - 4), at: lengthIndex, as: Int32.self)
    }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(count == 0 ? 0 : 1, as: Int32.self)
        buffer.writeInteger(hasNull ? 1 : 0, as: Int32.self)
        buffer.writeInteger(elementType.rawValue)
        guard count > 0 else { return }
        buffer.writeInteger(Int32(count))
        buffer.writeInteger(1, as: Int32.self)
        buffer.writeImmutableBuffer(elements)
    }
}

/// Rows held as one ``ColumnArray`` per column; `columns` lists them in the order the statement
/// binds them and `unnest(as:from:)` names them.
protocol ColumnRows {
    /// An instance without rows; its columns give the statement's text.
    init()
    /// The columns, in the order they are bound.
    var columns: [ColumnArray] { get }
}

extension ColumnRows {
    /// The number of rows.
    var count: Int { columns.first?.count ?? 0 }

    /// `unnest($<first>::<type>[], …) WITH ORDINALITY AS <alias>(<name>, …, ord)`: the columns
    /// bound from parameter `first` on, as a row source whose `ord` (from 1) is each row's place.
    static func unnest(as alias: String, from first: Int) -> String {
        let columns = Self().columns
        let parameters = columns.enumerated().map { "$\(first + $0.offset)::\($0.element.sqlElementType)[]" }
        return "unnest(\(parameters.joined(separator: ", "))) WITH ORDINALITY AS \(alias)(\(columns.map(\.name).joined(separator: ", ")), ord)"
    }
}
