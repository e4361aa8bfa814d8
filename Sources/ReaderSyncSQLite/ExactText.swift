import Foundation
import GRDB

// SQLite's text binding as GRDB does it (`sqlite3_bind_text` with length -1) and its text reading
// (`String(cString:)`) both stop at a NUL character, so an article body holding one would come back
// cut short. Text with a NUL is therefore stored as a BLOB of its UTF-8 bytes, and article text is
// read back by bytes, whatever the storage class. Text without NUL stays TEXT, as readable as ever
// in the `sqlite3` shell.

extension String {
    /// The value to bind so that the text round-trips exactly, NUL characters included.
    package var exactDatabaseValue: DatabaseValue {
        containsNUL(self) ? Data(utf8).databaseValue : databaseValue
    }
}

extension Row {
    /// The text at `index`, every byte of it, stored as TEXT or (with NUL characters) as BLOB.
    package func exactText(_ index: Int) -> String {
        exactTextIfPresent(index) ?? ""
    }

    /// ``exactText(_:)`` for a store that may have been damaged: `""` for NULL, an error for a
    /// value that is not text or bytes (GRDB's `RowDecodingError`), never a trap.
    package func decodeExactText(_ index: Int) throws -> String {
        try decode(Data?.self, atIndex: index).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// ``exactText(_:)``, or `nil` for NULL.
    package func exactTextIfPresent(_ index: Int) -> String? {
        // Data reads sqlite3_column_blob with its byte count, which keeps NUL for TEXT values too.
        (self[index] as Data?).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Whether `text` holds a NUL character; scans the contiguous UTF-8 storage with `memchr`.
package func containsNUL(_ text: String) -> Bool {
    var text = text
    return text.withUTF8 { buffer in
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return false }
        return memchr(base, 0, buffer.count) != nil
    }
}
