using System.CommandLine;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft results`: the finished trials of an experiment and the final test top-1 per task and method.</summary>
public static class ResultsCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("dir") { Description = "Experiment directory (results store)." };
        var csv = new Option<string?>("--csv") { Description = "Also write the table as CSV here." };
        var reference = new Option<string?>("--reference") { Description = "A store of the same runs under a longer budget (e.g. runs/reference): per task and method, the same selection? test top-1 within 1 point?" };
        var cmd = new Command("results", "The finished trials of an experiment as a table, and the final test top-1 per task and method.") { dir, csv, reference };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var path = Path.GetFullPath(r.GetValue(dir)!);
            if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"No experiment directory {path}.");
            var refDir = r.GetValue(reference) is string given ? Path.GetFullPath(given) : null;
            if (refDir is not null && !Directory.Exists(refDir)) throw new DirectoryNotFoundException($"--reference: no results store at {refDir}.");
            var store = new ResultsStore(path);
            var manifestPath = SweepDirectory.ManifestPath(path);
            foreach (var line in SweepDirectory.Report(store, File.Exists(manifestPath) ? SweepManifest.Load(manifestPath) : null)) Console.WriteLine(line);
            if (r.GetValue(csv) is string csvPath)
            {
                Microsoft.Data.Analysis.DataFrame.SaveCsv(store.ToDataFrame(), csvPath);
                Console.WriteLine($"wrote {csvPath}");
            }
            if (refDir is not null)
            {
                var agreement = Findings.BudgetAgreement.OfStores(path, refDir);
                Console.WriteLine();
                Console.WriteLine(Display.NotebookDisplay.DataFrameText(agreement.Table(), maxRows: long.MaxValue)); // every pair, not a notebook's first 20
                foreach (var u in agreement.Unmatched) Console.WriteLine($"unmatched: {u}");
                Console.WriteLine(agreement.Sentence());
            }
            return 0;
        }).Result);
        return cmd;
    }
}
