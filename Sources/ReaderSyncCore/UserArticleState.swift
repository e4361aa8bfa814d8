/// A user's state for one article, with the write behind each field.
///
/// Fields never written read as `false`, `false` and `0`.
public struct UserArticleState: Sendable, Hashable {
    public var articleId: String
    public var read: FieldCell?
    public var bookmarked: FieldCell?
    public var progress: FieldCell?
    /// Grows by one with every applied write.
    public var version: Int64

    public init(articleId: String, read: FieldCell? = nil, bookmarked: FieldCell? = nil,
                progress: FieldCell? = nil, version: Int64 = 0) {
        self.articleId = articleId
        self.read = read
        self.bookmarked = bookmarked
        self.progress = progress
        self.version = version
    }

    public subscript(field: StateField) -> FieldCell? {
        get {
            switch field {
            case .read: return read
            case .bookmarked: return bookmarked
            case .progress: return progress
            }
        }
        set {
            switch field {
            case .read: read = newValue
            case .bookmarked: bookmarked = newValue
            case .progress: progress = newValue
            }
        }
    }

    public var isRead: Bool { if case .bool(true) = read?.write.value { true } else { false } }
    public var isBookmarked: Bool { if case .bool(true) = bookmarked?.write.value { true } else { false } }
    public var progressValue: Double { if case .number(let x) = progress?.write.value { x } else { 0 } }

    /// The newest HLC among the fields, so a device can move its clock past everything it saw.
    public var newestHLC: HLC {
        [read, bookmarked, progress].compactMap { $0?.write.hlc }.max() ?? .zero
    }

    /// The state as a device receives it.
    public var wire: StateDTO {
        func writer(_ cell: FieldCell?) -> FieldWriter? {
            cell.map { FieldWriter(deviceId: $0.write.deviceId, hlc: $0.write.hlc) }
        }
        return StateDTO(articleId: articleId, read: isRead, bookmarked: isBookmarked,
                        progress: progressValue, version: version, hlc: newestHLC,
                        writers: StateWriters(read: writer(read), bookmarked: writer(bookmarked), progress: writer(progress)))
    }
}
