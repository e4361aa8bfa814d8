import Foundation
import Hummingbird
import Logging
import Mustache
import ReaderSyncCore
import ReaderSyncService

/// The support console (docs/SUPPORT.md, "The console"): read-only pages under `/console/` that
/// answer "why did this change?" without a terminal.
///
/// Served by `serve` itself, on the API's port: support needs no shell on the server nor access
/// to the database, and every server on a shared PostgreSQL database serves it. Only the admin
/// token opens it, typed into a login form (never in a URL); the form sets a signed session
/// cookie (HttpOnly, SameSite=Strict, path `/console`, 8 hours; `Secure` behind an HTTPS proxy
/// that says so in `X-Forwarded-Proto`), checked on every page. Pages are rendered on the
/// server, every text escaped, under a Content-Security-Policy that allows no script.
struct ConsoleHandlers: Sendable {
    let service: SyncService
    /// Reads the login form's body as the API reads its bodies: within the request timeout.
    let api: APIHandlers
    let logger: Logger

    static let cookieName = "reader_sync_console"
    static let recentLimit = 50
    static let usersShown = 200
    /// Decisions per field drawn and listed on an article page, the newest.
    static let decisionsShown = 100

    func routes() -> [Route] {
        [
            // Also `/console/`: the router ignores a trailing slash.
            Route(.get, "/console") { _, _ in Self.redirect("/console/users") },
            Route(.get, "/console/login") { _, _ in Self.page("login", LoginPage(error: nil)) },
            Route(.post, "/console/login", login),
            Route(.post, "/console/logout") { _, _ in
                var response = Self.redirect("/console/login")
                response.setCookie(Cookie(name: Self.cookieName, value: "", maxAge: 0, path: "/console",
                                          httpOnly: true, sameSite: .strict))
                return response
            },
            Route(.get, "/console/users", signedIn(users)),
            Route(.get, "/console/user", signedIn(user)),
            Route(.get, "/console/article", signedIn(article)),
            Route(.get, "/console/conflicts", signedIn(conflicts)),
        ]
    }

    // MARK: Session

    /// `POST /console/login` with the form field `token`: a session cookie and a redirect to the
    /// users page, or the form again with what was wrong (401 unknown token, 403 a user's token),
    /// or a page saying the form was over 16 KB (413) or did not arrive within the request
    /// timeout (408).
    func login(_ request: Request, parameters: URLParameters) async throws -> Response {
        let body: ByteBuffer
        do {
            body = try await api.collect(request, limit: 16 * 1024)
        } catch let error as SyncError {
            return Self.problem("Cannot sign in", error, signedIn: false)
        }
        let form = try? URLEncodedFormDecoder().decode(LoginForm.self, from: String(buffer: body))
        guard let token = form?.token, !token.isEmpty else {
            return Self.page("login", LoginPage(error: "Type the admin token."), status: .badRequest)
        }
        do {
            let session = try await service.openConsoleSession(token: token)
            var response = Self.redirect("/console/users")
            let proxiedHTTPS = request.headers[.init("X-Forwarded-Proto")!]?.lowercased() == "https"
            response.setCookie(Cookie(name: Self.cookieName, value: session.value,
                                      maxAge: Int(SyncService.consoleSessionLifetime), path: "/console",
                                      secure: proxiedHTTPS, httpOnly: true, sameSite: .strict))
            logger.info("console login")
            return response
        } catch let error as SyncError where error.code == .unauthorized || error.code == .forbidden {
            logger.info("console login refused", metadata: ["code": "\(error.code.rawValue)"])
            let message = error.code == .forbidden
                ? "That is a reader's token. The console opens only with the admin token."
                : "That token is not the admin token."
            return Self.page("login", LoginPage(error: message), status: error.code == .forbidden ? .forbidden : .unauthorized)
        }
    }

    /// A page handler that runs only for a valid session; otherwise a redirect to the login form.
    /// A ``SyncError`` (an unknown user, a bad parameter) becomes a page saying so, with its status.
    private func signedIn(
        _ handler: @escaping @Sendable (Request, URLParameters) async throws -> Response
    ) -> @Sendable (Request, URLParameters) async throws -> Response {
        { [service] request, parameters in
            guard try await service.isConsoleSession(request.cookies[Self.cookieName]?.value) else {
                return Self.redirect("/console/login")
            }
            do {
                return try await handler(request, parameters)
            } catch let error as SyncError {
                let heading = error.code == .notFound ? "Not found" : "Cannot show this page"
                return Self.problem(heading, error, signedIn: true)
            }
        }
    }

    // MARK: Pages

    func users(_ request: Request, parameters: URLParameters) async throws -> Response {
        let query = try parameters.formQuery("q")?.trimmingCharacters(in: .whitespaces) ?? ""
        // One more than shown, to tell whether there are more: the store reads no other user.
        let matching = try await service.users(UserQuery(nameContains: query.isEmpty ? nil : query, limit: Self.usersShown + 1))
        let shown = Array(matching.prefix(Self.usersShown))
        let devices = Dictionary(grouping: try await service.devices(userNames: shown.map(\.name)), by: \.userName)
        let rows = shown.map { summary in
            UsersPage.Row(name: summary.name, link: Self.link("/console/user", ["name": summary.name]),
                          token: Self.tokenState(summary), devices: devices[summary.name] ?? [])
        }
        return Self.page("users", UsersPage(query: query, hasQuery: !query.isEmpty, users: rows, hasUsers: !rows.isEmpty,
                                            truncated: matching.count > shown.count, shown: shown.count))
    }

    func user(_ request: Request, parameters: URLParameters) async throws -> Response {
        let name = try Self.required(parameters, "name")
        let record = try await service.user(named: name)
        let summary = try await service.users(UserQuery(name: record.name)).first
        let devices = try await service.devices(userName: name)
        let recent = try await service.recentStates(userId: record.id, limit: Self.recentLimit)
        let articles = recent.map { item in
            UserPage.Article(
                id: item.state.articleId, title: item.title ?? "(deleted)",
                link: Self.link("/console/article", ["user": name, "id": item.state.articleId]),
                read: FieldExplanation.shown(.read, item.state.read?.write.value),
                bookmarked: FieldExplanation.shown(.bookmarked, item.state.bookmarked?.write.value),
                progress: FieldExplanation.shown(.progress, item.state.progress?.write.value),
                version: item.state.version)
        }
        return Self.page("user", UserPage(
            pageTitle: name, name: name, token: summary.map(Self.tokenState) ?? "", createdAt: summary?.createdAt ?? "",
            conflictsLink: Self.link("/console/conflicts", ["user": name]),
            devices: devices, hasDevices: !devices.isEmpty, articles: articles, hasArticles: !articles.isEmpty, shown: articles.count))
    }

    func article(_ request: Request, parameters: URLParameters) async throws -> Response {
        let name = try Self.required(parameters, "user")
        let id = try Self.required(parameters, "id")
        let record = try await service.user(named: name)
        var title = id
        var deleted = false
        do {
            title = try await service.article(id: id).title
        } catch let error as SyncError where error.code == .articleDeleted || error.code == .notFound {
            deleted = error.code == .articleDeleted
        }
        var fields: [ArticlePage.Field] = []
        let histories = try await service.fieldHistories(userId: record.id, userName: name, articleId: id)
        for (field, history) in zip(StateField.allCases, histories) {
            // The picture and the list hold the newest decisions; why is written from all of them.
            let shown = Array(history.entries.suffix(Self.decisionsShown))
            fields.append(ArticlePage.Field(
                field: field.rawValue, label: Self.label(field),
                current: FieldExplanation.shown(field, history.current?.write.value),
                why: history.why, timeline: FieldTimeline(field: field, history: shown),
                lines: shown.map(\.line), hasLines: !shown.isEmpty, count: shown.count,
                truncated: shown.count < history.entries.count, total: history.entries.count))
        }
        return Self.page("article", ArticlePage(
            pageTitle: title, user: name, userLink: Self.link("/console/user", ["name": name]), id: id, title: title,
            deleted: deleted, conflictsLink: Self.link("/console/conflicts", ["user": name, "article": id]), fields: fields))
    }

    func conflicts(_ request: Request, parameters: URLParameters) async throws -> Response {
        let userName = try parameters.formQuery("user").map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let articleId = try parameters.formQuery("article") ?? ""
        let ruleName = try parameters.formQuery("rule") ?? ""
        var query = ConflictQuery(limit: 100)
        if !userName.isEmpty { query.userId = try await service.user(named: userName).id }
        if !articleId.isEmpty { query.articleId = articleId }
        if !ruleName.isEmpty {
            guard let rule = ConflictRule(rawValue: ruleName) else {
                throw SyncError(.invalidRequest, "there is no rule named \(ruleName)")
            }
            query.rules = [rule]
        }
        if let before = try parameters.query("before") {
            guard let id = Int64(before) else { throw SyncError(.invalidRequest, "before must be an entry id") }
            query.before = id
        }
        let entries = try await service.conflicts(query)
        let rows = entries.map { entry in
            ConflictsPage.Row(
                detectedAt: entry.detectedAt, user: entry.user, userLink: Self.link("/console/user", ["name": entry.user]),
                articleId: entry.articleId, articleLink: Self.link("/console/article", ["user": entry.user, "id": entry.articleId]),
                field: entry.field.rawValue, rule: entry.rule.rawValue, explanation: entry.explanation)
        }
        let older = entries.count == query.limit ? entries.last.map {
            Self.link("/console/conflicts", ["user": userName, "article": articleId, "rule": ruleName, "before": String($0.id)])
        } : nil
        return Self.page("conflicts", ConflictsPage(
            user: userName, article: articleId,
            rules: ConflictRule.allCases.map { .init(name: $0.rawValue, selected: $0.rawValue == ruleName) },
            entries: rows, hasEntries: !rows.isEmpty, filtered: !userName.isEmpty || !articleId.isEmpty || !ruleName.isEmpty,
            olderLink: older))
    }

    // MARK: Rendering

    /// The page saying what went wrong: `heading`, the error's message, the status the API gives
    /// its code.
    static func problem(_ heading: String, _ error: SyncError, signedIn: Bool) -> Response {
        page("problem", ProblemPage(pageTitle: heading, signedIn: signedIn, heading: heading, message: error.message),
             status: APIErrorMiddleware<BasicRequestContext>.status(for: error.code))
    }

    /// A rendered page with the console's headers: no caching, no framing, no script.
    static func page(_ template: String, _ object: some ConsolePage, status: HTTPResponse.Status = .ok) -> Response {
        let html = ConsoleTemplates.library.render(object, withTemplate: template) ?? ""
        return Response(status: status, headers: securityHeaders(contentType: "text/html; charset=utf-8"),
                        body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func redirect(_ location: String) -> Response {
        var headers = securityHeaders(contentType: "text/plain; charset=utf-8")
        headers[.location] = location
        return Response(status: .seeOther, headers: headers)
    }

    static func securityHeaders(contentType: String) -> HTTPFields {
        [
            .contentType: contentType,
            .cacheControl: "no-store",
            .init("Content-Security-Policy")!: ConsoleTemplates.contentSecurityPolicy,
            .init("X-Content-Type-Options")!: "nosniff",
            .init("X-Frame-Options")!: "DENY",
            .init("Referrer-Policy")!: "no-referrer",
        ]
    }

    /// `path?k=v&…` with every value percent-encoded (only RFC 3986's unreserved characters stay),
    /// empty values left out.
    static func link(_ path: String, _ query: KeyValuePairs<String, String>) -> String {
        let pairs = query.filter { !$0.value.isEmpty }.map { key, value in
            key + "=" + (value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? "")
        }
        return pairs.isEmpty ? path : path + "?" + pairs.joined(separator: "&")
    }

    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// A query parameter the page cannot do without.
    static func required(_ parameters: URLParameters, _ name: String) throws -> String {
        guard let value = try parameters.formQuery(name), !value.isEmpty else {
            throw SyncError(.invalidRequest, "this page needs \(name)=")
        }
        return value
    }

    static func tokenState(_ user: UserSummary) -> String {
        user.revokedAt.map { "revoked at \($0)" } ?? "valid"
    }

    static func label(_ field: StateField) -> String {
        switch field {
        case .read: return "Read"
        case .bookmarked: return "Bookmark"
        case .progress: return "Reading position"
        }
    }
}

// MARK: Page models (rendered by Mustache through their stored properties)

/// What every page's header needs.
protocol ConsolePage: Sendable {
    var pageTitle: String { get }
    var signedIn: Bool { get }
}

struct LoginForm: Decodable {
    var token: String
}

struct LoginPage: ConsolePage {
    var pageTitle = "Log in"
    var signedIn = false
    var error: String?
    var hours = Int(SyncService.consoleSessionLifetime / 3600)

    init(error: String?) {
        self.error = error
    }
}

struct ProblemPage: ConsolePage {
    var pageTitle: String
    var signedIn = true
    var heading: String
    var message: String
}

struct UsersPage: ConsolePage {
    struct Row: Sendable {
        var name: String
        var link: String
        var token: String
        var devices: [DeviceSummary]
    }

    var pageTitle = "Users"
    var signedIn = true
    var query: String
    /// A stored flag: Mustache counts an empty string as true.
    var hasQuery: Bool
    var users: [Row]
    var hasUsers: Bool
    var truncated: Bool
    var shown: Int
}

struct UserPage: ConsolePage {
    struct Article: Sendable {
        var id: String
        var title: String
        var link: String
        var read: String
        var bookmarked: String
        var progress: String
        var version: Int64
    }

    var pageTitle: String
    var signedIn = true
    var name: String
    var token: String
    var createdAt: String
    var conflictsLink: String
    var devices: [DeviceSummary]
    var hasDevices: Bool
    var articles: [Article]
    var hasArticles: Bool
    var shown: Int
}

struct ArticlePage: ConsolePage {
    struct Field: Sendable {
        var field: String
        var label: String
        var current: String
        var why: String
        var timeline: FieldTimeline
        var lines: [String]
        var hasLines: Bool
        var count: Int
        /// Whether older decisions than the ``count`` shown are kept (``total`` in all).
        var truncated: Bool
        var total: Int
    }

    var pageTitle: String
    var signedIn = true
    var user: String
    var userLink: String
    var id: String
    var title: String
    var deleted: Bool
    var conflictsLink: String
    var fields: [Field]
}

struct ConflictsPage: ConsolePage {
    struct Rule: Sendable {
        var name: String
        var selected: Bool
    }

    struct Row: Sendable {
        var detectedAt: String
        var user: String
        var userLink: String
        var articleId: String
        var articleLink: String
        var field: String
        var rule: String
        var explanation: String
    }

    var pageTitle = "Conflict log"
    var signedIn = true
    var user: String
    var article: String
    var rules: [Rule]
    var entries: [Row]
    var hasEntries: Bool
    var filtered: Bool
    var olderLink: String?
}
