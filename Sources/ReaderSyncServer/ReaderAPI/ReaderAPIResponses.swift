import Foundation
import ReaderSyncCore
import ReaderSyncService

/// The Google Reader API's JSON bodies, field for field as Google Reader sent them and as
/// FreshRSS and Miniflux serve them (numbers that clients read as strings are strings).
enum ReaderJSON {
    struct UserInfo: Encodable {
        var userId: String
        var userName: String
        var userProfileId: String
        var userEmail: String
    }

    struct Category: Encodable {
        var id: String
        var label: String
    }

    struct Subscription: Encodable {
        var id: String
        var title: String
        var categories: [Category]
        /// The stream's own address: where its Atom feed is, relative to the API's root.
        var url: String
        var htmlUrl: String
        var iconUrl: String
        var sortid: String
        var firstitemmsec: String
    }

    struct SubscriptionList: Encodable {
        var subscriptions: [Subscription]
    }

    struct Tag: Encodable {
        var id: String
        var type: String?
    }

    struct TagList: Encodable {
        var tags: [Tag]
    }

    struct UnreadCount: Encodable {
        var id: String
        var count: Int
        var newestItemTimestampUsec: String
    }

    struct UnreadCounts: Encodable {
        var max: Int
        var unreadcounts: [UnreadCount]
    }

    struct ItemRef: Encodable {
        /// The short (decimal) form.
        var id: String
        var directStreamIds: [String]
        var timestampUsec: String
    }

    struct ItemRefs: Encodable {
        var itemRefs: [ItemRef]
        var continuation: String?
    }

    struct Link: Encodable {
        var href: String
        var type: String?
    }

    struct Content: Encodable {
        var direction = "ltr"
        var content: String
    }

    struct Origin: Encodable {
        var streamId: String
        var title: String
        var htmlUrl: String
    }

    struct Item: Encodable {
        /// The long form.
        var id: String
        var crawlTimeMsec: String
        var timestampUsec: String
        /// Seconds since 1970.
        var published: Int64
        var updated: Int64
        var title: String
        var author: String
        var canonical: [Link]
        var alternate: [Link]
        var categories: [String]
        var summary: Content
        var origin: Origin
    }

    struct Stream: Encodable {
        var id: String
        var title: String?
        var updated: Int64
        var items: [Item]
        var continuation: String?
    }

    struct Login: Encodable {
        var SID: String
        var LSID: String
        var Auth: String
    }
}

extension ReaderJSON {
    /// An item as `stream/contents` and `stream/items/contents` show it: its states and section
    /// as categories, its arrival as `crawlTimeMsec`/`timestampUsec`.
    static func item(_ item: ReaderSyncService.Item, sections: [String: Section]) -> Item {
        let article = item.article
        let section = sections[article.section]
        let micros = item.ref.position.arrivedAt
        return Item(
            id: ReaderItemId.long(item.ref.itemId),
            crawlTimeMsec: String(micros / 1000), timestampUsec: String(micros),
            published: Self.seconds(article.publishedAt) ?? micros / 1_000_000,
            updated: Self.seconds(article.updatedAt) ?? Self.seconds(article.publishedAt) ?? micros / 1_000_000,
            title: article.title, author: article.author,
            canonical: article.url.isEmpty ? [] : [Link(href: article.url)],
            alternate: article.url.isEmpty ? [] : [Link(href: article.url, type: "text/html")],
            categories: categories(of: item.ref, section: section),
            summary: Content(content: article.body.isEmpty ? article.summary : article.body),
            origin: Origin(streamId: section.map { ReaderStream.feed($0.id).id } ?? "", title: article.section, htmlUrl: ""))
    }

    /// The stream ids an item is in: the reading list, its label, read or kept-unread (newsboat
    /// takes an item it holds as read back to unread only when it sees `kept-unread`), starred.
    static func categories(of ref: ReaderSyncService.ItemRef, section: Section?) -> [String] {
        var categories = [ReaderStream.readingList.id]
        if let section { categories.append(ReaderStream.label(section.name).id) }
        categories.append(ref.read ? ReaderStream.read.id : ReaderStream.keptUnread.id)
        if ref.starred { categories.append(ReaderStream.starred.id) }
        return categories
    }

    /// Seconds since 1970 of an RFC 3339 timestamp, `nil` for an empty or unreadable one.
    static func seconds(_ timestamp: String) -> Int64? {
        Timestamp.parse(timestamp).map { Timestamp.millis($0) / 1000 }
    }
}

/// The Atom 1.0 feed of a stream (`GET /reader/atom/<stream>`), the way newsboat reads items:
/// each entry's id is the item's long id, its states are categories with Google's scheme.
enum ReaderAtom {
    static func feed(streamId: String, title: String, items: [ReaderSyncService.Item], sections: [String: Section],
                     continuation: String?, updated: Date) -> String {
        var xml = #"<?xml version="1.0" encoding="utf-8"?>"# + "\n"
        xml += #"<feed xmlns="http://www.w3.org/2005/Atom" xmlns:gr="http://www.google.com/schemas/reader/atom/""#
        xml += #" xmlns:idx="urn:atom-extension:indexing" idx:index="no">"# + "\n"
        if let continuation { xml += "<gr:continuation>\(escape(continuation))</gr:continuation>\n" }
        xml += "<id>tag:google.com,2005:reader/\(escape(streamId))</id>\n"
        xml += "<title>\(escape(title))</title>\n"
        xml += "<updated>\(Timestamp.format(updated))</updated>\n"
        for item in items {
            let article = item.article
            let section = sections[article.section]
            xml += #"<entry gr:crawl-timestamp-msec=""# + String(item.ref.position.arrivedAt / 1000) + "\">\n"
            xml += "<id>\(ReaderItemId.long(item.ref.itemId))</id>\n"
            // States carry Google's scheme and their name as label (what newsboat reads); a section's
            // label does not, so a section named "read" can never read as the state.
            for category in ReaderJSON.categories(of: item.ref, section: section) {
                if category.hasPrefix(ReaderStream.statePrefix) {
                    xml += #"<category term=""# + escape(category) + #"" scheme="http://www.google.com/reader/" label=""#
                        + escape(String(category.dropFirst(ReaderStream.statePrefix.count))) + "\"/>\n"
                } else {
                    xml += #"<category term=""# + escape(category) + #"" label=""# + escape(section?.name ?? "") + "\"/>\n"
                }
            }
            xml += "<title type=\"html\">\(escape(article.title))</title>\n"
            let published = article.publishedAt.isEmpty ? Timestamp.format(Timestamp.date(millis: item.ref.position.arrivedAt / 1000)) : article.publishedAt
            xml += "<published>\(escape(published))</published>\n"
            xml += "<updated>\(escape(article.updatedAt.isEmpty ? published : article.updatedAt))</updated>\n"
            if !article.url.isEmpty { xml += "<link rel=\"alternate\" href=\"\(escape(article.url))\" type=\"text/html\"/>\n" }
            if !article.summary.isEmpty { xml += "<summary type=\"html\">\(escape(article.summary))</summary>\n" }
            xml += "<content type=\"html\">\(escape(article.body))</content>\n"
            if !article.author.isEmpty { xml += "<author><name>\(escape(article.author))</name></author>\n" }
            if let section {
                xml += #"<source gr:stream-id=""# + escape(ReaderStream.feed(section.id).id) + "\"><id>tag:google.com,2005:reader/"
                    + escape(ReaderStream.feed(section.id).id) + "</id><title>" + escape(section.name) + "</title></source>\n"
            }
            xml += "</entry>\n"
        }
        xml += "</feed>\n"
        return xml
    }

    /// Text as XML 1.0 character data or an attribute value: `& < > " '` escaped, and the
    /// characters XML 1.0 cannot hold at all (C0 controls but tab, CR and LF; U+FFFE, U+FFFF;
    /// lone surrogates never reach a Swift string) replaced with U+FFFD.
    static func escape(_ text: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
