import Prometheus
import ReaderSyncCore
import ReaderSyncService

/// The server's Prometheus metrics, served at `GET /metrics`.
///
/// One registry per application (no global bootstrap), so tests can run several servers side by side.
package struct ServerMetrics: Sendable {
    package let registry = PrometheusCollectorRegistry()

    private static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5),
    ]

    package init() {}

    func request(route: String, method: String, status: Int, duration: Duration) {
        registry.makeCounter(
            descriptor: .init(namespace: "readersync", metricName: "requests", unitName: "total",
                              helpText: "HTTP requests by route, method and status"),
            labels: [("route", route), ("method", method), ("status", String(status))]
        ).increment()
        registry.makeDurationHistogram(
            descriptor: .init(namespace: "readersync", metricName: "request_duration", unitName: "seconds",
                              helpText: "HTTP request latency by route"),
            labels: [("route", route)], buckets: Self.latencyBuckets
        ).record(duration)
    }

    /// Sets the store's gauges to the values just read.
    func record(_ gauges: [StoreGauge]) {
        for gauge in gauges {
            registry.makeGauge(descriptor: .init(namespace: "readersync", metricName: gauge.name, unitName: gauge.unit, helpText: gauge.help))
                .set(gauge.value)
        }
    }

    /// A live stream began sending (`readersync_event_streams` counts those open).
    func eventStreamOpened() {
        eventStreams.increment()
    }

    func eventStreamClosed() {
        eventStreams.decrement()
    }

    private var eventStreams: Gauge {
        registry.makeGauge(descriptor: .init(namespace: "readersync", metricName: "event_streams", unitName: "",
                                             helpText: "Live event streams open on this server"))
    }

    func pulled(changes: Int) {
        registry.makeCounter(descriptor: .init(namespace: "readersync", metricName: "pulls", unitName: "total",
                                               helpText: "Pull pages served")).increment()
        registry.makeCounter(descriptor: .init(namespace: "readersync", metricName: "pulled_changes", unitName: "total",
                                               helpText: "Changes (articles, tombstones, states) served by pulls"))
            .increment(by: Int64(changes))
    }

    func pushed(_ response: PushResponse, rules: [ConflictRule]) {
        registry.makeCounter(descriptor: .init(namespace: "readersync", metricName: "pushes", unitName: "total",
                                               helpText: "Pushes applied")).increment()
        for outcome in MutationOutcome.allCases {
            let count = response.results.count { $0.outcome == outcome }
            guard count > 0 else { continue }
            registry.makeCounter(
                descriptor: .init(namespace: "readersync", metricName: "mutations", unitName: "total",
                                  helpText: "Pushed mutations by outcome"),
                labels: [("outcome", outcome.rawValue)]
            ).increment(by: Int64(count))
        }
        for rule in rules {
            registry.makeCounter(
                descriptor: .init(namespace: "readersync", metricName: "conflicts", unitName: "total",
                                  helpText: "Conflict log entries by rule"),
                labels: [("rule", rule.rawValue)]
            ).increment()
        }
    }
}
