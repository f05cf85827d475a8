using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftWorkbench.Tuning;
using Xunit.Abstractions;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>
/// Hostile results stores (issue 17's fuzz suite, store part): trials.jsonl cut at every offset, bytes flipped, every
/// field given every wrong JSON type, huge and deeply nested lines, invalid UTF-8, unreadable files; claim files with
/// garbage, wrong types, forged owners, huge sizes and past or future times. Every case must give a clean error
/// (an IOException naming the file) or a correct result (only well-formed records, each a finished trial; a stale
/// claim taken over). A read's work is bounded by counting it (characters parsed against the file's size: each line
/// once per read), never by the clock, which a busy CI machine stretches. Prints a table of case families: cases,
/// clean results, clean errors.
/// </summary>
public class StoreFuzzTests
{
    readonly ITestOutputHelper output;
    public StoreFuzzTests(ITestOutputHelper output) => this.output = output;

    static TrialRecord Rec(int i)
    {
        var c = new TrialConfig { Task = "t" + i, Method = "lora", Lr = 1e-3 * (i + 1), WeightDecay = 1e-4, Hp = new(StringComparer.Ordinal) { ["r"] = "8" } };
        return new TrialRecord { Key = c.Key, Config = c, Top1Last = 40 + i % 50, Top1Best = 41 + i % 50, Epochs = 5, TrainableParams = 1000 + i, WallSeconds = 1.5 };
    }

    /// <summary>How long a claim test waits for a stale claim to be taken over before calling it a hang (a deadline, not a speed).</summary>
    static readonly TimeSpan HangAfter = TimeSpan.FromSeconds(60);
    readonly Dictionary<string, (int Cases, int Results, int Errors)> table = new();

    void Count(string family, bool error)
    {
        var (c, r, e) = table.GetValueOrDefault(family);
        table[family] = (c + 1, r + (error ? 0 : 1), e + (error ? 1 : 0));
    }

    /// <summary>Prints this test's families and adds the test as one row to environment/fuzz.sh's table (called once
    /// every case has passed its asserts, so all of them are clean).</summary>
    void PrintTable(string kind, string item)
    {
        output.WriteLine($"{"case family",-34} {"cases",6} {"result",7} {"error",6}");
        foreach (var (k, v) in table) output.WriteLine($"{k,-34} {v.Cases,6} {v.Results,7} {v.Errors,6}");
        int cases = table.Values.Sum(v => v.Cases);
        PeftWorkbench.Fuzz.FuzzTable.Record("store", kind, cases, cases, item);
    }

    /// <summary>Reads a store whose trials.jsonl holds <paramref name="bytes"/>: only valid records come back (each one
    /// of <paramref name="originals"/> when <paramref name="exact"/>), or a clean IOException; then a valid record
    /// still appends and reads back.</summary>
    void Check(string family, byte[] bytes, IReadOnlyList<TrialRecord> originals, bool exact)
    {
        var dir = Temp.Dir();
        File.WriteAllBytes(Path.Combine(dir, "trials.jsonl"), bytes);
        var store = new ResultsStore(dir);
        var read = store.Read();
        Assert.True(store.CharsParsed <= bytes.Length, $"{family}: a read of {bytes.Length} bytes parsed {store.CharsParsed} characters");
        Assert.All(read.Records, r => Assert.Equal(r.Config.Key, r.Key));
        Assert.Equal(read.Records.Count, read.Records.Select(r => r.Key).Distinct().Count());
        if (exact)
        {
            var known = originals.ToDictionary(o => o.Key, o => JsonSerializer.Serialize(o));
            Assert.All(read.Records, r => Assert.Equal(known[r.Key], JsonSerializer.Serialize(r)));
        }
        var fresh = Rec(999);
        Assert.True(store.Append(fresh), family);
        Assert.Equal(JsonSerializer.Serialize(fresh), JsonSerializer.Serialize(store.Find(fresh.Key)));
        // Read, then Append (reads once under the lock) and Find (reads once): three reads of at most the file plus the new line.
        long line = JsonSerializer.Serialize(fresh).Length + 1;
        Assert.True(store.CharsParsed <= 3 * (bytes.Length + line), $"{family}: read + append + find parsed {store.CharsParsed} characters of a {bytes.Length}-byte file");
        Count(family, error: false);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void HostileTrialsFilesGiveOnlyValidRecordsOrACleanError()
    {
        var originals = Enumerable.Range(0, 3).Select(Rec).ToList();
        var text = string.Concat(originals.Select(r => JsonSerializer.Serialize(r) + "\n"));
        var bytes = Encoding.UTF8.GetBytes(text);
        var rng = new Random(17);

        for (int cut = 0; cut <= bytes.Length; cut += 7) Check("truncated at an offset", bytes[..cut], originals, exact: true);
        for (int i = 0; i < 150; i++)
        {
            var b = (byte[])bytes.Clone();
            int at = rng.Next(b.Length);
            b[at] = (byte)(b[at] ^ (1 << rng.Next(8)));
            Check("one bit flipped", b, originals, exact: false);
        }

        // Every field (top level and Config) given every wrong JSON type.
        var wrong = new JsonNode?[] { JsonValue.Create("x"), JsonValue.Create(-1e308), JsonValue.Create(7), new JsonArray(), new JsonObject(), null, JsonValue.Create(true), JsonValue.Create("") };
        var node = JsonNode.Parse(JsonSerializer.Serialize(originals[0]))!.AsObject();
        var paths = node.Select(kv => new[] { kv.Key }).Concat(node["Config"]!.AsObject().Select(kv => new[] { "Config", kv.Key })).ToList();
        foreach (var path in paths)
            foreach (var value in wrong)
            {
                var copy = JsonNode.Parse(node.ToJsonString())!.AsObject();
                var parent = path.Length == 1 ? copy : copy[path[0]]!.AsObject();
                parent[path[^1]] = value?.DeepClone();
                Check("a field with a wrong JSON type", Encoding.UTF8.GetBytes(copy.ToJsonString() + "\n" + text), originals, exact: false);
            }

        Check("a 4 MB line", Encoding.UTF8.GetBytes("{\"Key\":\"" + new string('k', 4 << 20) + "\"}\n" + text), originals, exact: true);
        Check("nesting 100,000 deep", Encoding.UTF8.GetBytes(new string('[', 100_000) + "\n" + text), originals, exact: true);
        Check("invalid UTF-8", new byte[] { 0xff, 0xfe, 0xc3, 0x28, 0x0a }.Concat(bytes).ToArray(), originals, exact: true);
        Check("NUL bytes and CRLF", Encoding.UTF8.GetBytes("\0\0\0\r\n" + text.Replace("\n", "\r\n")), originals, exact: true);
        Check("JSON that is not an object", Encoding.UTF8.GetBytes("null\n[]\n42\n\"s\"\n" + text), originals, exact: true);

        // Unreadable: trials.jsonl is a folder. A clean IOException naming it, from reading and from appending.
        var dir = Temp.Dir();
        Directory.CreateDirectory(Path.Combine(dir, "trials.jsonl"));
        var store = new ResultsStore(dir);
        Assert.Contains("trials.jsonl", Assert.Throws<IOException>(() => store.Read()).Message);
        Assert.Contains("trials.jsonl", Assert.Throws<IOException>(() => store.Append(Rec(1))).Message);
        Count("trials.jsonl unreadable (a folder)", error: true);
        Count("trials.jsonl unreadable (a folder)", error: true);
        PrintTable("trials.jsonl cut, bit flips, wrong types, huge/deep/invalid lines", "17");
    }

    /// <summary>Issue 26's store cases: hostile identity.json contents, a folder in the lock's place, and a trial failed
    /// thousands of times before it succeeded (each rerun's record replaces the failure, in linear work).</summary>
    [Fact]
    public void HostileIdentityLockAndRetryRecordsGiveACleanErrorOrTheRightRecord()
    {
        var identity = TrialIdentity.Of(new SweepManifest { Store = "", Suite = "toy", Profile = "smoke", Backbone = PeftWorkbench.Vit.VitConfig.Preset("mini"), Trials = new() }.Setup, "toy-3");
        var contents = new[] { "", "null", "[]", "{\"smoke/vtab1k/toy-3\":null}", "{\"smoke/vtab1k/toy-3\":{\"suite\":7}}", "{\"a\":{\"b\":null}}",
            "{" + new string('[', 100_000), "\u00ff\u00fe", "{\"smoke/vtab1k/toy-3\":{}}" };
        foreach (var text in contents)
        {
            var store = new ResultsStore(Temp.Dir()) { Notices = null };
            File.WriteAllText(Path.Combine(store.Dir, "identity.json"), text);
            var e = Record.Exception(() => store.CheckIdentity("smoke/vtab1k/toy-3", identity));
            Assert.True(e is InvalidDataException or InvalidOperationException, $"identity.json '{text[..Math.Min(20, text.Length)]}': {e?.GetType().Name}: {e?.Message}");
            Assert.Contains(store.Dir, e!.Message);
            Count("identity.json hostile", error: true);
        }
        var folder = new ResultsStore(Temp.Dir());
        Directory.CreateDirectory(Path.Combine(folder.Dir, "identity.json"));
        Assert.Contains("identity.json is a folder", Assert.Throws<IOException>(() => folder.CheckIdentity("s/p/t", identity)).Message);
        Count("identity.json a folder", error: true);

        var locked = new ResultsStore(Temp.Dir());
        Directory.CreateDirectory(Path.Combine(locked.Dir, "store.lock"));
        Assert.Contains("store.lock is a folder", Assert.Throws<IOException>(() => locked.Append(Rec(1))).Message);
        Count("store.lock a folder", error: true);

        // 5,000 failures of one trial, then its success, then a failure recorded after the success (refused as a duplicate).
        var ok = Rec(7);
        var failure = JsonSerializer.Serialize(ok with { Status = "error", Error = "IOException: x", Top1Last = null, Top1Best = null }) + "\n";
        var bytes = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(failure, 5000)) + JsonSerializer.Serialize(ok) + "\n" + failure);
        var dir = Temp.Dir();
        File.WriteAllBytes(Path.Combine(dir, "trials.jsonl"), bytes);
        var retried = new ResultsStore(dir);
        var read = retried.Read();
        Assert.Equal("ok", Assert.Single(read.Records).Status);
        Assert.Single(read.Invalid);
        Assert.True(retried.CharsParsed <= bytes.Length);
        Count("a trial failed 5,000 times, then ok", error: false);
        PrintTable("identity.json and store.lock hostile, 5,000 retries of one trial", "26.2/13");
    }

    [Fact]
    public void HostileClaimsAreTakenOverOrRespectedWithinTheirTimeBound()
    {
        var me = Process.GetCurrentProcess();
        string Owner(object o) => JsonSerializer.Serialize(o);
        var contents = new (string Family, byte[] Bytes)[]
        {
            ("empty claim file", Array.Empty<byte>()),
            ("random bytes", Enumerable.Range(0, 64).Select(i => (byte)(i * 37 + 11)).ToArray()),
            ("JSON null", "null"u8.ToArray()),
            ("JSON array", "[1,2]"u8.ToArray()),
            ("wrong types", Encoding.UTF8.GetBytes("{\"Key\":1,\"Host\":[],\"Pid\":\"x\",\"StartTicks\":{},\"ClaimedUtc\":true}")),
            ("no host", Encoding.UTF8.GetBytes(Owner(new { Key = "k", Pid = 5 }))),
            ("negative pid", Encoding.UTF8.GetBytes(Owner(new { Key = "k", Host = Environment.MachineName, Pid = -4, StartTicks = 0L, ClaimedUtc = DateTime.UtcNow }))),
            ("this host, pid reused", Encoding.UTF8.GetBytes(Owner(new { Key = "k", Host = Environment.MachineName, Pid = me.Id, StartTicks = 12345L, ClaimedUtc = DateTime.UtcNow }))),
            ("this host, extreme ticks", Encoding.UTF8.GetBytes(Owner(new { Key = "k", Host = Environment.MachineName, Pid = 1, StartTicks = long.MinValue, ClaimedUtc = DateTime.MaxValue }))),
            ("other host, forged", Encoding.UTF8.GetBytes(Owner(new { Key = "k", Host = "elsewhere", Pid = 1, StartTicks = 0L, ClaimedUtc = DateTime.MinValue }))),
            ("a 5 MB claim", new byte[5 << 20]),
        };
        var times = new (string Name, TimeSpan Offset)[] { ("now", TimeSpan.Zero), ("a year ago", TimeSpan.FromDays(-365)), ("in ten years", TimeSpan.FromDays(3650)) };
        foreach (var (family, bytes) in contents)
            foreach (var (when, offset) in times)
            {
                var notices = new List<string>();
                var store = new ResultsStore(Temp.Dir()) { StaleAfter = TimeSpan.FromSeconds(0.4), UnreadableClaimGrace = TimeSpan.FromSeconds(0.4), Notices = notices.Add };
                var path = Path.Combine(store.Dir, "claims", ResultsStore.FileNameOf("k") + ".claim");
                File.WriteAllBytes(path, bytes);
                File.SetLastWriteTimeUtc(path, DateTime.UtcNow + offset);
                var clock = Stopwatch.StartNew();
                TrialClaim? claim = null;
                while (claim is null && clock.Elapsed < HangAfter)
                {
                    claim = store.TryClaim("k");
                    _ = store.Claimed();
                    if (claim is null) Thread.Sleep(50);
                }
                Assert.True(claim is not null, $"{family}, modified {when}: not taken over within {HangAfter.TotalSeconds} s (notices: {string.Join(" | ", notices)})");
                claim!.Dispose();
                Count(family, error: false);
            }

        // A live claim of this very process is respected (never taken over), and a folder in a claim's place is a clean error.
        var live = new ResultsStore(Temp.Dir()) { StaleAfter = TimeSpan.FromSeconds(1), Notices = null };
        using (live.TryClaim("k"))
        {
            Thread.Sleep(1500);
            Assert.Null(live.TryClaim("k"));
        }
        Count("this process's live claim", error: false);
        var odd = new ResultsStore(Temp.Dir()) { UnreadableClaimGrace = TimeSpan.Zero, Notices = null };
        var folder = Path.Combine(odd.Dir, "claims", ResultsStore.FileNameOf("k") + ".claim");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "x"), "x");
        Thread.Sleep(20);
        Assert.Contains(folder, Assert.Throws<IOException>(() => odd.TryClaim("k")).Message);
        Count("a folder in a claim's place", error: true);
        PrintTable("claim files: garbage, forged owners, 5 MB, past/future times", "17");
    }
}
