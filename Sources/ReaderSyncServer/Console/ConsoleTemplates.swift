import Crypto
import Foundation
import Mustache

/// The support console's pages as Mustache templates (swift-mustache), kept in code so the
/// binary needs no resource files. Every text, id and number goes through `{{…}}`, escaped by
/// ``ScalarHTMLEscaping`` (each template, partials included, names it in its first pragma: a
/// partial starts again from swift-mustache's own HTML escaping); no template has `{{{…}}}`.
enum ConsoleTemplates {
    /// The one stylesheet, inline; the Content-Security-Policy allows exactly this text by its hash
    /// (``contentSecurityPolicy``) and no script at all.
    static let css = """
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
        header{display:flex;gap:24px;align-items:center;padding:10px 24px;background:#1f3a5f;color:#fff}
        header a,header button{color:#fff;background:none;border:0;font:inherit;cursor:pointer;text-decoration:underline}
        nav{display:flex;gap:16px;align-items:center}
        main{padding:16px 24px;max-width:1200px}
        table{border-collapse:collapse;background:#fff;margin:8px 0 16px}
        th,td{border:1px solid #ddd;padding:5px 9px;text-align:left;vertical-align:top}
        th{background:#f0f0f0}
        .id{font:12px ui-monospace,monospace;color:#555;word-break:break-all}
        .error{color:#b3261e;font-weight:600}
        .hint{color:#555;max-width:40em}
        .filter{display:flex;gap:12px;align-items:end;flex-wrap:wrap;margin:8px 0}
        .filter label{display:flex;flex-direction:column;font-size:13px}
        .inline{display:inline}
        .field{background:#fff;border:1px solid #ddd;padding:8px 16px;margin:12px 0}
        .why{font-size:16px;max-width:60em}
        .lines{font:12px ui-monospace,monospace}
        .timeline{display:block;max-width:100%;height:auto}
        .timeline text{font:12px system-ui,sans-serif;fill:#1d1d1f}
        .timeline .device{font-weight:600}
        .timeline .time{fill:#555;font-size:11px}
        .timeline .axis{fill:#777;font-size:11px}
        .lane{stroke:#c8c8c8;stroke-width:1}
        .mark.applied circle{fill:#1f6f5c}
        .mark.lost circle{fill:#fff;stroke:#b3261e;stroke-width:2.5}
        .mark.rejected line{stroke:#b3261e;stroke-width:3}
        .span{stroke:#fff;stroke-width:2}
        .span.on{fill:#bfe3d6}
        .span.off{fill:#e4e4e4}
        .legend{font-size:13px;color:#444}
        """

    /// `default-src 'none'`: no script, frame, font or fetch; only the inline stylesheet above,
    /// forms posting to this server, and no framing.
    static let contentSecurityPolicy: String = {
        let hash = Data(SHA256.hash(data: Array(css.utf8))).base64EncodedString()
        return "default-src 'none'; style-src 'sha256-\(hash)'; img-src 'self'; form-action 'self'; "
            + "frame-ancestors 'none'; base-uri 'none'"
    }()

    static let head = """
        {{% CONTENT_TYPE: SCALAR_HTML}}<!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>{{pageTitle}} · ReaderSync console</title>
        <style>\(css)</style>
        </head>
        <body>
        <header><strong>ReaderSync console</strong>{{#signedIn}}
        <nav><a href="/console/users">Users</a><a href="/console/conflicts">Conflict log</a>
        <form method="post" action="/console/logout" class="inline"><button type="submit" id="logout">Log out</button></form></nav>{{/signedIn}}
        </header>
        <main>

        """

    static let foot = """
        {{% CONTENT_TYPE: SCALAR_HTML}}</main>
        </body>
        </html>

        """

    static let login = """
        {{% CONTENT_TYPE: SCALAR_HTML}}{{> head}}
        <h1>Log in</h1>
        {{#error}}<p class="error" role="alert" id="error">{{error}}</p>{{/error}}
        <form method="post" action="/console/login">
        <p><label for="token">Admin token</label><br>
        <input id="token" name="token" type="password" autocomplete="current-password" size="48" required></p>
        <p><button type="submit" id="login">Log in</button></p>
        </form>
        <p class="hint">The admin token is the one <code>reader-sync serve</code> printed at its first start, or gave
        with <code>--admin-token</code>. A reader's token does not open the console. A session lasts {{hours}} hours.</p>
        {{> foot}}
        """

    static let users = """
        {{% CONTENT_TYPE: SCALAR_HTML}}{{> head}}
        <h1>Users</h1>
        <form method="get" action="/console/users" class="filter">
        <label>Find a user <input id="q" name="q" value="{{query}}"></label>
        <button type="submit" id="find">Find</button>
        </form>
        {{^users}}<p>No user{{#hasQuery}} whose name contains “{{query}}”{{/hasQuery}}.</p>{{/users}}
        {{#hasUsers}}
        <table id="users"><thead><tr><th>User</th><th>Token</th><th>Devices: last push, last mutation id</th></tr></thead><tbody>
        {{#users}}<tr><td><a href="{{link}}">{{name}}</a></td><td>{{token}}</td>
        <td>{{^devices}}none yet{{/devices}}{{#devices}}<div><span class="id">{{id}}</span>: {{lastSeenAt}}, #{{lastMutationId}}</div>{{/devices}}</td></tr>
        {{/users}}</tbody></table>
        {{#truncated}}<p class="hint">Showing the first {{shown}} by name; more match: narrow the search.</p>{{/truncated}}
        {{/hasUsers}}
        {{> foot}}
        """

    static let user = """
        {{% CONTENT_TYPE: SCALAR_HTML}}{{> head}}
        <p><a href="/console/users">Users</a> ›</p>
        <h1>{{name}}</h1>
        <p>Token {{token}}; user since {{createdAt}}. <a href="{{conflictsLink}}">{{name}}'s conflict log</a></p>
        <h2>Devices</h2>
        {{^devices}}<p>No device of {{name}} has pushed a change yet.</p>{{/devices}}
        {{#hasDevices}}
        <table id="devices"><thead><tr><th>Device</th><th>First push</th><th>Last push</th><th>Last mutation id</th></tr></thead><tbody>
        {{#devices}}<tr><td class="id">{{id}}</td><td>{{firstSeenAt}}</td><td>{{lastSeenAt}}</td><td>{{lastMutationId}}</td></tr>
        {{/devices}}</tbody></table>
        {{/hasDevices}}
        <h2>Recently changed articles</h2>
        {{^articles}}<p>{{name}} has not changed any article.</p>{{/articles}}
        {{#hasArticles}}
        <table id="articles"><thead><tr><th>Article</th><th>Read</th><th>Bookmarked</th><th>Position</th><th>Version</th></tr></thead><tbody>
        {{#articles}}<tr><td><a href="{{link}}">{{title}}</a><div class="id">{{id}}</div></td><td>{{read}}</td><td>{{bookmarked}}</td><td>{{progress}}</td><td>{{version}}</td></tr>
        {{/articles}}</tbody></table>
        <p class="hint">The {{shown}} most recently changed, newest first.</p>
        {{/hasArticles}}
        {{> foot}}
        """

    static let article = """
        {{% CONTENT_TYPE: SCALAR_HTML}}{{> head}}
        <p><a href="/console/users">Users</a> › <a href="{{userLink}}">{{user}}</a> ›</p>
        <h1 id="title">{{title}}</h1>
        <p class="id">article {{id}}{{#deleted}} (deleted){{/deleted}} · <a href="{{conflictsLink}}">conflicts of this article</a></p>
        <p class="legend">Each lane is one of {{user}}'s devices and each mark one change, in the order the server decided them:
        ● applied, ○ lost to another change, ✕ refused. The band underneath is the value from each applied change to the next.
        The time above a mark is the device's clock (UTC).</p>
        {{#fields}}
        <section class="field" id="field-{{field}}">
        <h2>{{label}}: {{current}}</h2>
        <p class="why" id="why-{{field}}">{{why}}</p>
        {{#timeline}}{{#hasMarks}}
        <svg class="timeline" id="timeline-{{field}}" role="img" aria-label="{{label}} timeline" width="{{width}}" height="{{height}}" viewBox="0 0 {{width}} {{height}}" xmlns="http://www.w3.org/2000/svg">
        {{#lanes}}<line class="lane" x1="{{laneLeft}}" x2="{{laneRight}}" y1="{{y}}" y2="{{y}}"/><text class="device" x="8" y="{{labelY}}">{{deviceId}}</text>
        {{/lanes}}{{#spans}}<rect class="span {{tone}}" x="{{x}}" y="{{spanY}}" width="{{width}}" height="26"/><text x="{{textX}}" y="{{spanTextY}}" text-anchor="middle">{{value}}</text>
        {{/spans}}<text class="device" x="8" y="{{spanTextY}}">value</text>
        {{#marks}}<g class="mark {{outcome}}" data-device="{{deviceId}}"><title>{{line}}</title>{{#rejected}}<line x1="{{x1}}" y1="{{y1}}" x2="{{x2}}" y2="{{y2}}"/><line x1="{{x1}}" y1="{{y2}}" x2="{{x2}}" y2="{{y1}}"/>{{/rejected}}{{^rejected}}<circle cx="{{x}}" cy="{{y}}" r="8"/>{{/rejected}}<text class="time" x="{{x}}" y="{{timeY}}" text-anchor="middle">{{time}}</text><text x="{{x}}" y="{{valueY}}" text-anchor="middle">{{value}}</text></g>
        {{/marks}}<text class="axis" x="{{laneLeft}}" y="{{axisY}}">order the server decided in →</text>
        </svg>
        {{/hasMarks}}{{/timeline}}
        {{#hasLines}}<details><summary>{{count}} decisions, oldest first{{#truncated}} (the last {{count}} of {{total}}){{/truncated}}</summary><ol class="lines">{{#lines}}<li>{{.}}</li>{{/lines}}</ol></details>{{/hasLines}}
        </section>
        {{/fields}}
        {{> foot}}
        """

    static let conflicts = """
        {{% CONTENT_TYPE: SCALAR_HTML}}{{> head}}
        <h1>Conflict log</h1>
        <form method="get" action="/console/conflicts" class="filter">
        <label>User <input name="user" id="filter-user" value="{{user}}"></label>
        <label>Article <input name="article" id="filter-article" value="{{article}}"></label>
        <label>Rule <select name="rule" id="filter-rule"><option value="">any</option>{{#rules}}<option value="{{name}}"{{#selected}} selected{{/selected}}>{{name}}</option>{{/rules}}</select></label>
        <button type="submit" id="filter">Filter</button>
        </form>
        {{^entries}}<p>No conflicts logged{{#filtered}} that match{{/filtered}}.</p>{{/entries}}
        {{#hasEntries}}
        <table id="conflicts"><thead><tr><th>Detected</th><th>User</th><th>Article</th><th>Field</th><th>Rule</th><th>What happened</th></tr></thead><tbody>
        {{#entries}}<tr><td>{{detectedAt}}</td><td><a href="{{userLink}}">{{user}}</a></td><td><a href="{{articleLink}}" class="id">{{articleId}}</a></td><td>{{field}}</td><td>{{rule}}</td><td>{{explanation}}</td></tr>
        {{/entries}}</tbody></table>
        {{/hasEntries}}
        {{#olderLink}}<p><a href="{{olderLink}}" id="older">Older entries</a></p>{{/olderLink}}
        {{> foot}}
        """

    static let problem = """
        {{% CONTENT_TYPE: SCALAR_HTML}}{{> head}}
        <h1>{{heading}}</h1>
        <p class="error" role="alert">{{message}}</p>
        {{> foot}}
        """

    /// Every template, parsed once.
    static let library: MustacheLibrary = {
        MustacheContentTypes.register(ScalarHTMLEscaping(), named: "SCALAR_HTML")
        var library = MustacheLibrary()
        let templates = ["head": head, "foot": foot, "login": login, "users": users, "user": user,
                         "article": article, "conflicts": conflicts, "problem": problem]
        for (name, text) in templates {
            // Fixed text, parsed at first use: a template that does not parse is a bug caught by every console test.
            try! library.register(text, named: name)
        }
        return library
    }()
}

/// HTML escaping of `< > & " '` by Unicode scalar.
///
/// swift-mustache's own HTML escaping compares whole characters (grapheme clusters), so a `"`
/// followed by a combining mark (U+0301) is one character that is not `"` and passes unescaped,
/// closing the attribute it is in: a device id such as `x"\u{301} display="none` could hide a
/// timeline's mark. Scalars cannot be combined that way. Control characters other than tab and
/// line breaks (a NUL from a search or an id in a URL) are shown as U+FFFD, as an HTML parser
/// would show a NUL, rather than written raw into the page.
struct ScalarHTMLEscaping: MustacheContentType {
    func escapeText(_ text: String) -> String {
        var escaped = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "<": escaped.append(contentsOf: "&lt;".unicodeScalars)
            case ">": escaped.append(contentsOf: "&gt;".unicodeScalars)
            case "&": escaped.append(contentsOf: "&amp;".unicodeScalars)
            case "\"": escaped.append(contentsOf: "&quot;".unicodeScalars)
            case "'": escaped.append(contentsOf: "&#39;".unicodeScalars)
            case "\t", "\n", "\r": escaped.append(scalar)
            case _ where scalar.properties.generalCategory == .control: escaped.append("\u{FFFD}")
            default: escaped.append(scalar)
            }
        }
        return String(escaped)
    }
}
