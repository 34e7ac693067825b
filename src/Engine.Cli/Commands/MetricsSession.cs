using System.Diagnostics.Tracing;
using System.Globalization;
using Engine.Diagnostics;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;

namespace Engine.Cli.Commands;

/// <summary>One published value of an <c>Engine</c> instrument: the change over the last interval.</summary>
/// <param name="Instrument">The instrument (engine.translations, …).</param>
/// <param name="Tags">Its tags as the runtime formats them (iommu=dmar0, or iommu=dmar0,granularity=page).</param>
/// <param name="Delta">How much the counter grew during the interval.</param>
internal readonly record struct MetricDelta(string Instrument, string Tags, double Delta);

/// <summary>
/// An EventPipe session on another process's <c>System.Diagnostics.Metrics</c> provider, limited to
/// the <see cref="EngineMetrics.MeterName"/> meter — what <c>dotnet-counters monitor --counters Engine</c>
/// opens — parsed with TraceEvent. The runtime's MetricsEventSource observes the instruments every
/// interval in the target and publishes, for each counter and tag set, the change since the last
/// observation (its first observation only primes it).
/// </summary>
internal sealed class MetricsSession : IDisposable
{
    private const string Provider = "System.Diagnostics.Metrics";
    private const long TimeSeriesValues = 0x2, Messages = 0x1; // MetricsEventSource.Keywords
    private readonly EventPipeSession _session;
    private readonly EventPipeEventSource _source;
    private readonly string _sessionId = Guid.NewGuid().ToString("N");
    private readonly Thread _reader;

    private MetricsSession(int pid, TimeSpan interval, Action<IReadOnlyList<MetricDelta>> onInterval, Action<string> onError)
    {
        var arguments = new Dictionary<string, string>
        {
            ["SessionId"] = _sessionId,
            ["Metrics"] = EngineMetrics.MeterName,
            ["RefreshInterval"] = interval.TotalSeconds.ToString(CultureInfo.InvariantCulture),
            ["MaxTimeSeries"] = "1000",
            ["MaxHistograms"] = "10",
        };
        var client = new DiagnosticsClient(pid);
        _session = client.StartEventPipeSession([new EventPipeProvider(Provider, EventLevel.Informational, TimeSeriesValues | Messages, arguments)], requestRundown: false, circularBufferMB: 16);
        _source = new EventPipeEventSource(_session.EventStream);
        var pending = new List<MetricDelta>();
        _source.Dynamic.All += e =>
        {
            if (e.ProviderName != Provider || e.PayloadByName("sessionId") as string != _sessionId)
                return;
            switch (e.EventName)
            {
                case "CounterRateValuePublished" when e.PayloadByName("meterName") as string == EngineMetrics.MeterName:
                    // rate: the change since the previous observation; empty at the first, which only primes it.
                    if (double.TryParse(e.PayloadByName("rate") as string, NumberStyles.Float, CultureInfo.InvariantCulture, out double delta))
                        pending.Add(new MetricDelta((string)e.PayloadByName("instrumentName"), e.PayloadByName("tags") as string ?? "", delta));
                    break;
                case "CollectionStop" or "Collection/Stop": // TraceEvent names it by task and opcode
                    onInterval([.. pending]);
                    pending.Clear();
                    break;
                case "Error":
                case "MultipleSessionsNotSupportedError":
                case "MultipleSessionsConfiguredIncorrectlyError":
                case "TimeSeriesLimitReached":
                    onError($"{e.EventName}: {e.PayloadByName("errorMessage") ?? e.FormattedMessage}");
                    break;
            }
        };
        _reader = new Thread(() =>
        {
            try
            {
                _source.Process();
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or EndOfStreamException)
            {
                // The target exited or the session was stopped: the stream ends.
            }
        }) { IsBackground = true, Name = "engine-monitor-eventpipe" };
        _reader.Start();
    }

    /// <summary>
    /// Attaches to <paramref name="pid"/> and calls <paramref name="onInterval"/> (on the session's
    /// reader thread) with every instrument's change at the end of each interval.
    /// </summary>
    public static MetricsSession Start(int pid, TimeSpan interval, Action<IReadOnlyList<MetricDelta>> onInterval, Action<string> onError) =>
        new(pid, interval, onInterval, onError);

    /// <summary>Waits until the target's stream ends (it exited) or <paramref name="timeout"/> passes; true when it ended.</summary>
    public bool WaitForEnd(TimeSpan timeout) => _reader.Join(timeout);

    /// <summary>Ends the session (the target keeps running) and waits for the reader to drain.</summary>
    public void Dispose()
    {
        try
        {
            _session.Stop();
        }
        catch (Exception e) when (e is ServerNotAvailableException or IOException or TimeoutException or ServerErrorException)
        {
            // The target has already gone: nothing left to stop.
        }
        _reader.Join(TimeSpan.FromSeconds(5));
        _source.Dispose();
        _session.Dispose();
    }
}
