using System.Diagnostics;
using System.Text.Json;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using TorchSharp;

namespace PeftWorkbench.Tests.Tuning;

public class ResultsStoreTests
{
    static TrialRecord Rec(string task, double lr, double? top1 = 50) =>
        new TrialConfig { Task = task, Method = "m", Lr = lr } is var c ? new TrialRecord { Key = c.Key, Config = c, Top1Last = top1, TrainableParams = 7 } : null!;

    [Fact]
    public void AppendRefusesDuplicatesAndATornLineIsNotAResult()
    {
        var store = new ResultsStore(Temp.Dir());
        Assert.True(store.Append(Rec("a", 1e-3)));
        Assert.False(store.Append(Rec("a", 1e-3) with { Top1Last = 99 }));
        // A writer killed mid-line: the fragment is ignored and the next record still lands on its own line.
        File.AppendAllText(Path.Combine(store.Dir, "trials.jsonl"), "{\"Key\":\"b\",\"Conf");
        Assert.True(store.Append(Rec("c", 1e-3)));
        var keys = store.Records().Select(r => r.Key).ToList();
        Assert.Equal(new[] { Rec("a", 1e-3).Key, Rec("c", 1e-3).Key }, keys);
        Assert.Equal(50, store.Find(Rec("a", 1e-3).Key)!.Top1Last);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(store.Dir, "trials.jsonl")).Length);
    }

    [Fact]
    public void ClaimIsExclusiveUntilReleasedAndFinishedTrialsCannotBeClaimed()
    {
        var store = new ResultsStore(Temp.Dir());
        var claim = store.TryClaim("x");
        Assert.NotNull(claim);
        Assert.Null(store.TryClaim("x"));
        Assert.Equal(new[] { "x" }, store.Claimed());
        claim!.Dispose();
        Assert.Empty(store.Claimed());
        var rec = Rec("x", 1);
        store.Append(rec);
        Assert.Null(store.TryClaim(rec.Key));
    }

    /// <summary>A progress view reads claims without the store's lock (Claimed) while workers claim trials. A reader that
    /// opened a claim in the instant between its creation and its writer's lock used to make the claim fail and leave an
    /// empty file behind, which every worker then waited on as "an unreadable claim" for 30 s (seen once in notebook 02's
    /// default run). Readers must never make a free trial unclaimable.</summary>
    [Fact]
    public void ReadersOfClaimsNeverMakeAFreeTrialUnclaimable()
    {
        var store = new ResultsStore(Temp.Dir());
        var claimsDir = Path.Combine(store.Dir, "claims");
        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
                foreach (var f in Directory.EnumerateFiles(claimsDir, "*.claim"))
                    try { using var fs = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete); fs.ReadByte(); }
                    catch (IOException) { } // gone between listing and opening
        })).ToList();
        int refused = 0;
        for (int i = 0; i < 2000; i++)
        {
            using var claim = store.TryClaim("k" + (i % 7));
            if (claim is null) refused++;
        }
        stop.Cancel();
        Task.WaitAll(readers.ToArray());
        Assert.Equal(0, refused);
        Assert.Empty(Directory.EnumerateFiles(claimsDir, "*.claim"));
    }

    [Fact]
    public void AClaimLeftByADeadProcessIsTakenOverOneOnAnotherHostOnlyWhenItsHeartbeatIsOld()
    {
        var store = new ResultsStore(Temp.Dir());
        // Lives long enough to read its start time (a `true` could be gone and reaped first on a loaded machine).
        using var dead = Process.Start(new ProcessStartInfo("sleep", "0.5") { UseShellExecute = false })!;
        long start = dead.StartTime.ToUniversalTime().Ticks;
        int pid = dead.Id;
        dead.WaitForExit();
        string Plant(string key, string host, int p, long ticks)
        {
            var path = Path.Combine(store.Dir, "claims", ResultsStore.FileNameOf(key) + ".claim");
            File.WriteAllText(path, JsonSerializer.Serialize(new { Key = key, Host = host, Pid = p, StartTicks = ticks, ClaimedUtc = DateTime.UtcNow }));
            return path;
        }
        Plant("dead", Environment.MachineName, pid, start);
        using (var c = store.TryClaim("dead")) Assert.NotNull(c);
        // This process is alive: its own claim (e.g. another thread's) is respected.
        Plant("mine", Environment.MachineName, Environment.ProcessId, Process.GetCurrentProcess().StartTime.ToUniversalTime().Ticks);
        Assert.Null(store.TryClaim("mine"));

        var path = Plant("alive-elsewhere", "some-other-node", 1, 0);
        Assert.Null(store.TryClaim("alive-elsewhere"));
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow - store.StaleAfter - TimeSpan.FromMinutes(1));
        using (var c = store.TryClaim("alive-elsewhere")) Assert.NotNull(c);
    }

    [Fact]
    public void ConcurrentWorkersInOneProcessNeverRunOrRecordATrialTwice()
    {
        var store = new ResultsStore(Temp.Dir());
        var keys = Enumerable.Range(0, 30).Select(i => Rec("t" + i, 1e-3)).ToList();
        var runs = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            foreach (var r in keys)
            {
                using var claim = store.TryClaim(r.Key);
                if (claim is null) continue;
                runs.Add(r.Key);
                Assert.True(store.Append(r));
            }
        });
        Assert.Equal(30, runs.Count);
        Assert.Equal(30, runs.Distinct().Count());
        Assert.Equal(30, File.ReadAllLines(Path.Combine(store.Dir, "trials.jsonl")).Length);
    }

    [Fact]
    public void LoadsAsADataFrameWithMissingValuesAsNulls()
    {
        var store = new ResultsStore(Temp.Dir());
        store.Append(Rec("a", 1e-3, 61.5));
        store.Append(Rec("b", 1e-2, null) with { Status = "diverged" });
        var df = store.ToDataFrame();
        Assert.Equal(2, df.Rows.Count);
        Assert.Equal(61.5, df["top1_last"][0]);
        Assert.Null(df["top1_last"][1]);
        Assert.Equal("diverged", df["status"][1]);
        Assert.Equal(0.01, df["lr"][1]);
        Assert.Equal(7L, df["trainable_params"][0]);
    }

    [Fact]
    public void PredictionsRoundTripAsSafetensors()
    {
        var store = new ResultsStore(Temp.Dir());
        using var eval = new EvalResult(50, torch.tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2), torch.tensor(new long[] { 1, 0 }));
        var rel = store.SavePredictions("vtab1k/t/m/final", eval);
        var file = PeftWorkbench.Checkpoints.SafetensorsFile.Open(Path.Combine(store.Dir, rel));
        using var logits = file.Read("logits");
        using var labels = file.Read("labels");
        Assert.Equal(new float[] { 1, 2, 3, 4 }, logits.data<float>().ToArray());
        Assert.Equal(new long[] { 1, 0 }, labels.data<long>().ToArray());
        Assert.Equal("vtab1k/t/m/final", file.Metadata["key"]);
    }
}
