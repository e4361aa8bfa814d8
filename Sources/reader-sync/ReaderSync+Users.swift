import ArgumentParser
import Foundation
import ReaderSyncCore
import ReaderSyncServer
import ReaderSyncService

extension ReaderSync {
    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create and list users; revoke or replace their tokens; give them app passwords.",
            subcommands: [Add.self, List.self, Revoke.self, Token.self, AppPassword.self, AppPasswords.self,
                          RevokeAppPassword.self])
    }
}

extension ReaderSync.Users {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a user and print its token (only the token, on stdout; it is shown only this once).")

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The user's name: letters, digits and . _ - @")
        var name: String

        func run() async throws {
            say(try await database.withService(create: true) { try await $0.createUser(name: name).token })
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users with their device counts.")

        @OptionGroup var database: DatabaseOptions

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() async throws {
            try await database.withService(create: false) { service in
                let users = try await service.users()
                if json {
                    say(try prettyJSON(users))
                    return
                }
                if users.isEmpty {
                    say("no users yet; create one with: reader-sync users add NAME --db \(database.shown)")
                    return
                }
                say(TextTable(header: ["NAME", "DEVICES", "CREATED", "TOKEN"],
                              rows: users.map { [$0.name, String($0.devices), $0.createdAt, $0.revokedAt.map { "revoked \($0)" } ?? "valid"] }).render())
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a user's token: it gets 401 from the next request on, also on a running server.",
            discussion: """
                The user's app passwords (Google Reader API apps) are shut out too, until a new token is issued. \
                The user's devices, state and conflicts stay. Issue a new token with: reader-sync users token NAME
                """)

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The user's name.")
        var name: String

        func run() async throws {
            try await database.withService(create: false) { try await $0.revokeToken(name: name) }
            say("revoked the token of \(name)")
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a user a new token and print it (only the token, on stdout; shown only this once).",
            discussion: "The old token, revoked or not, stops working. The user's devices, state and conflicts stay.")

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The user's name.")
        var name: String

        func run() async throws {
            say(try await database.withService(create: false) { try await $0.issueToken(name: name).token })
        }
    }

    struct AppPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "app-password",
            abstract: "Create an app password for a reader app and print it (only the password, on stdout; shown only this once).",
            discussion: """
                A reader app that speaks the Google Reader API (NetNewsWire, Reeder, newsboat…) logs in with the user \
                name and this password; it is one device of the user. A new password with an existing label replaces \
                it (the old one stops working). See docs/GOOGLE-READER-API.md.
                """)

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The user's name.")
        var name: String

        @Option(help: "What the password is for, e.g. the app: 1 to 64 letters, digits and . _ -")
        var label = "reader-app"

        func run() async throws {
            say(try await database.withService(create: false) { service in
                try await ReaderAPI(service: service).createAppPassword(userName: name, label: label)
            })
        }
    }

    struct AppPasswords: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "app-passwords", abstract: "List a user's app passwords by label (never the passwords).")

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The user's name.")
        var name: String

        func run() async throws {
            let records = try await database.withService(create: false) { service in
                try await ReaderAPI(service: service).appPasswords(userName: name)
            }
            if records.isEmpty {
                say("\(name) has no app passwords; create one with: reader-sync users app-password \(name) --db \(database.shown)")
                return
            }
            say(TextTable(header: ["LABEL", "CREATED", "DEVICE"],
                          rows: records.map { [$0.label, $0.createdAt, $0.deviceId] }).render())
        }
    }

    struct RevokeAppPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke-app-password",
            abstract: "Remove a user's app password: apps logged in with it get 401 from their next request on.")

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The user's name.")
        var name: String

        @Argument(help: "The password's label.")
        var label: String

        func run() async throws {
            try await database.withService(create: false) { service in
                try await ReaderAPI(service: service).revokeAppPassword(userName: name, label: label)
            }
            say("removed the app password \(label) of \(name)")
        }
    }
}
