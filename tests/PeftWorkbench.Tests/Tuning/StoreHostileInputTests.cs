using System.Text.Json;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Issue 17, items 12-15: invalid records, garbage and other hosts' claims, deleted predictions, moved stores.</summary>
public class StoreHostileInputTests
{
    static readonly DefaultTrialEnvironment Env = new();

    /// <summary>One toy task, two methods, two lrs: 4 tune + 2 final trials on the 8-px test ViT (well under a second each).</summary>
    internal static (SweepManifest Manifest, string Path) Plan(string dir)
    {
        var o = ProtocolOptions.Vtab1k("smoke") with { Lrs = new[] { 1e-3, 1e-2 }, WeightDecays = new[] { 1e-4 }, DropPaths = new[] { 0.0 } };
        var m = Sweep.Plan(dir, "toy", new[] { "toy-3" }, new[] { "full", "linear" }, o, TinyData.Config(), Env);
        var path = Path.Combine(dir, "manifest.json");
        m.Save(path);
        return (m, path);
    }

    static string Trials(string dir) => Path.Combine(dir, "trials.jsonl");

    static string ClaimFile(ResultsStore store, string key) => Path.Combine(store.Dir, "claims", ResultsStore.FileNameOf(key) + ".claim");

    [Fact]
    public void InvalidRecordsAreSkippedCountedAndNamedAndTheRealTrialsStillRun()
    {
        var dir = Temp.Dir();
        var (m, _) = Plan(dir);
        var final = m.Trials.First(t => t.Phase == "final");
        var tune = m.Trials[0];
        File.WriteAllLines(Trials(dir), new[]
        {
            $$"""{"Key":"{{tune.Key}}","Config":null,"Top1Last":50}""",
            """{"Key":null,"Config":{"Task":"toy-3","Method":"full"},"Top1Last":50}""",
            // A minimal fake under the real final key: its Config gives another key, and "ok" has no top-1.
            "{\"Key\":\"" + final.Key + "\",\"Config\":{\"Task\":\"toy-3\",\"Method\":\"full\"}}",
            "{\"Key\":\"" + final.Key + "\",\"Config\":" + JsonSerializer.Serialize(final) + "}",
            "{\"Key\":\"" + tune.Key + "\",\"Config\":" + JsonSerializer.Serialize(tune) + ",\"Top1Last\":\"high\"}",
        });
        var store = new ResultsStore(dir);
        var read = store.Read();
        Assert.Empty(read.Records);
        Assert.Equal(new[] { 1, 2, 3, 4, 5 }, read.Invalid.Select(l => l.Line));
        Assert.Contains("no Config", read.Invalid[0].Reason);
        Assert.Contains("no Key", read.Invalid[1].Reason);
        Assert.Contains("does not match its Config", read.Invalid[2].Reason);
        Assert.Contains("status ok without Top1Last", read.Invalid[3].Reason);
        Assert.Contains("JsonException", read.Invalid[4].Reason);
        Assert.StartsWith("5 invalid line(s) in trials.jsonl skipped", read.InvalidSummary());
        Assert.Null(store.Find(final.Key));

        // The sweep runs every trial, the real final included, and records each once beside the skipped lines.
        Assert.Equal(m.Trials.Count, Sweep.RunWorker(m, Env));
        var after = store.Read();
        Assert.Equal(m.Trials.Select(t => t.Key).OrderBy(k => k), after.Records.Select(r => r.Key).OrderBy(k => k));
        Assert.Equal(5, after.Invalid.Count);
        var real = store.Find(final.Key)!;
        Assert.True(real.Ok && real.Epochs >= 1 && real.Predictions is not null, real.Status);
        Assert.NotNull(ResultsStore.ToDataFrame(after.Records));
    }

    [Fact]
    public void AGarbageClaimWithAFutureTimeGoesStaleAfterTheGraceItIsWatched()
    {
        var notices = new List<string>();
        var store = new ResultsStore(Temp.Dir()) { UnreadableClaimGrace = TimeSpan.FromSeconds(1), Notices = notices.Add };
        var path = ClaimFile(store, "k");
        File.WriteAllBytes(path, new byte[] { 0xff, 0x00, 0x7b, 0x22 });
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddDays(30));
        Assert.Null(store.TryClaim("k"));
        Assert.Contains(notices, n => n.StartsWith("waiting: an unreadable claim on"));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        TrialClaim? claim = null;
        while (claim is null && clock.Elapsed < TimeSpan.FromSeconds(10)) { Thread.Sleep(100); claim = store.TryClaim("k"); }
        using (claim)
        {
            Assert.NotNull(claim);
            // Not before the grace (the loop's 10 s bounds the wait; how much later is the machine's business, not a check).
            Assert.True(clock.Elapsed.TotalSeconds >= 0.8, $"taken over after {clock.Elapsed.TotalSeconds:F2} s, inside the 1 s grace");
            Assert.Contains(notices, n => n.StartsWith("taking over an unreadable claim"));
        }
    }

    [Fact]
    public void AnotherHostsFreshClaimIsReportedWithWhoAndHowLongThenTakenOverWhenSilent()
    {
        var notices = new List<string>();
        var store = new ResultsStore(Temp.Dir()) { StaleAfter = TimeSpan.FromSeconds(2), Notices = notices.Add };
        var since = DateTime.UtcNow.AddMinutes(-3);
        var path = ClaimFile(store, "k");
        File.WriteAllText(path, JsonSerializer.Serialize(new { Key = "k", Host = "node17", Pid = 4242, StartTicks = 1L, ClaimedUtc = since }));
        // Its heartbeat comes from a clock an hour ahead: silence is then measured by watching, not by the time.
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddHours(1));
        Assert.Null(store.TryClaim("k"));
        var first = Assert.Single(notices);
        Assert.Contains("claimed by node17 pid 4242", first);
        Assert.Contains("3m0", first);
        Assert.Contains("taken over if silent for", first);
        Assert.Null(store.TryClaim("k"));
        Assert.Single(notices); // once, then every minute
        var holder = store.Holder("k")!;
        Assert.Equal(("node17", 4242, false), (holder.Host, holder.Pid, holder.Stale));
        Thread.Sleep(2300);
        using (var claim = store.TryClaim("k")) Assert.NotNull(claim);
        Assert.StartsWith("taking over k, claimed by node17", notices[^1]);
    }

    [Fact]
    public void ASlurmTaskWaitsForAnotherWorkersClaimAndEndsAlreadyFinishedOrTakesOverAStaleOne()
    {
        var dir = Temp.Dir();
        var (m, _) = Plan(dir);
        var key = m.Trials[0].Key;
        var store = new ResultsStore(dir) { StaleAfter = TimeSpan.FromSeconds(2), Notices = null };
        // A live claim of this process (a duplicate submission on this host): the task waits, saying so, and ends
        // "already finished" once the holder records the trial.
        var held = store.TryClaim(key)!;
        var log = new StringWriter();
        var waiting = Task.Run(() => Sweep.RunIndex(m, 0, Env, log: log, store: store));
        Thread.Sleep(1500);
        Assert.False(waiting.IsCompleted);
        var record = Sweep.RunIndex(m, 1, Env).Record with { Key = key, Config = m.Trials[0] };
        Assert.True(store.Append(record));
        held.Dispose();
        Assert.True(waiting.Wait(TimeSpan.FromSeconds(10)));
        Assert.True(waiting.Result.AlreadyFinished);
        Assert.Contains($"waiting: {key}, run by pid {Environment.ProcessId} on this host", log.ToString());

        // Another host's claim that falls silent: taken over after StaleAfter, and the trial runs here.
        var other = m.Trials[2].Key;
        File.WriteAllText(ClaimFile(store, other), JsonSerializer.Serialize(new { Key = other, Host = "node17", Pid = 4242, StartTicks = 1L, ClaimedUtc = DateTime.UtcNow }));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var run = Sweep.RunIndex(m, 2, Env, store: store);
        Assert.False(run.AlreadyFinished);
        // Not before StaleAfter; the upper end would time the trial's training too (a wall-clock check, issue 26).
        Assert.True(clock.Elapsed.TotalSeconds >= 1.9, $"taken over after {clock.Elapsed.TotalSeconds:F2} s, before StaleAfter");
        Assert.Equal(Environment.ProcessId, store.Find(other)!.Pid);
    }

    [Fact]
    public void ADeletedPredictionsFileOrFolderIsNoticedAndTheTrialRunsAgainOnResume()
    {
        var dir = Temp.Dir();
        var (m, _) = Plan(dir);
        Assert.Equal(m.Trials.Count, Sweep.RunWorker(m, Env));
        var store = new ResultsStore(dir);
        var finals = store.Records().Where(r => r.Config.Phase == "final").ToList();
        Assert.Equal(2, finals.Count);
        File.Delete(Path.Combine(dir, finals[0].Predictions!));
        var read = store.Read();
        Assert.Equal(m.Trials.Count - 1, read.Records.Count);
        Assert.Contains($"predictions file {finals[0].Predictions} is missing", Assert.Single(read.Invalid).Reason);
        Assert.Equal(1, Sweep.RunWorker(m, Env));
        Assert.True(File.Exists(Path.Combine(dir, store.Find(finals[0].Key)!.Predictions!)));

        // Every trial saves the predictions of the split it is scored on (tune: val, final: test): all of them rerun.
        int withPredictions = store.Records().Count(r => r.Predictions is not null);
        Assert.Equal(m.Trials.Count, withPredictions);
        Directory.Delete(Path.Combine(dir, "predictions"), recursive: true);
        Assert.Empty(store.Read().Records);
        Assert.Equal(withPredictions, Sweep.RunWorker(m, Env));
        Assert.Equal(m.Trials.Count, store.Records().Count);
        Assert.All(store.Records().Where(r => r.Predictions is not null), r => Assert.True(File.Exists(Path.Combine(dir, r.Predictions!))));
    }

    [Fact]
    public void ACopiedStoreResumesWhereItIsAndLeavesTheOriginalAlone()
    {
        var dir = Temp.Dir();
        var (m, path) = Plan(dir);
        Sweep.RunIndex(m, 0, Env);
        var copy = Temp.Dir();
        foreach (var f in Directory.GetFiles(dir, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(copy, Path.GetRelativePath(dir, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target);
        }
        var moved = SweepManifest.Load(Path.Combine(copy, "manifest.json"));
        Assert.Equal(Path.GetFullPath(copy).TrimEnd('/'), moved.Store);
        Assert.Equal(m.Trials.Count - 1, Sweep.RunWorker(moved, Env));
        Assert.Equal(m.Trials.Count, new ResultsStore(copy).Records().Count);
        Assert.Single(new ResultsStore(dir).Records());
        Assert.Throws<ArgumentException>(() => m.Save(Path.Combine(copy, "elsewhere", "manifest.json")));
    }
}
