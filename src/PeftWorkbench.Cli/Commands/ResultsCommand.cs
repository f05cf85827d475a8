using System.CommandLine;
using System.Diagnostics;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft results`: the finished trials of an experiment and the final test top-1 per task and method.</summary>
public static class ResultsCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("dir") { Description = "Experiment directory (results store)." };
        var csv = new Option<string?>("--csv") { Description = "Also write the table as CSV here." };
        var cmd = new Command("results", "The finished trials of an experiment as a table, and the final test top-1 per task and method.") { dir, csv };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var path = Path.GetFullPath(r.GetValue(dir)!);
            if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"No experiment directory {path}.");
            var store = new ResultsStore(path);
            var manifestPath = Path.Combine(path, "manifest.json");
            PrintResults(store, File.Exists(manifestPath) ? SweepManifest.Load(manifestPath) : null);
            if (r.GetValue(csv) is string csvPath)
            {
                Microsoft.Data.Analysis.DataFrame.SaveCsv(store.ToDataFrame(), csvPath);
                Console.WriteLine($"wrote {csvPath}");
            }
            return 0;
        }).Result);
        return cmd;
    }

    internal static void PrintResults(ResultsStore store, SweepManifest? manifest)
    {
        var contents = store.Read();
        var records = contents.Records;
        var claimed = store.Claimed();
        Console.WriteLine($"{store.Dir}: {records.Count} finished" + (manifest is null ? "" : $" of {manifest.Trials.Count}") +
            (claimed.Count > 0 ? $", {claimed.Count} claimed (running, or left by a killed worker)" : "") +
            (records.Count > 0 ? " (already finished: a rerun or resubmission skips these)" : ""));
        if (contents.InvalidSummary() is string bad) Console.WriteLine("  " + bad);
        foreach (var rec in records) Console.WriteLine("  " + Tuning.Sweep.Describe(rec));
        var finals = records.Where(x => x.Config.Phase == "final").ToList();
        if (finals.Count == 0) return;
        Console.WriteLine();
        Console.WriteLine($"  {"task",-16} {"method",-14} {"test last",9} {"test best",9} {"params",12}  selected");
        foreach (var f in finals.OrderBy(x => x.Config.Task).ThenBy(x => x.Config.Method))
            Console.WriteLine($"  {f.Config.Task,-16} {f.Config.Method,-14} {F(f.Top1Last),9} {F(f.Top1Best),9} {f.TrainableParams,12:N0}  " +
                (f.Status == "ok" ? $"lr={f.Config.Lr} wd={f.Config.WeightDecay} dp={f.Config.DropPath} {f.Config.HpText}" : f.Status));
        static string F(double? v) => v is double d ? d.ToString("F2") : "-";
    }
}
