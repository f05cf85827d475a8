using System.CommandLine;
using PeftWorkbench.Analysis;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft analyze`: every analysis of a results store (tables as CSV, charts as offline HTML, timings).</summary>
public static class AnalyzeCommand
{
    public static Command Create()
    {
        var dir = new Argument<string?>("dir") { Description = "Experiment directory (results store); leave out for the robustness runs and the paper's charts only.", Arity = ArgumentArity.ZeroOrOne };
        var outDir = new Option<string>("--out") { Description = "Where tables (CSV) and charts (HTML) go.", Required = true };
        var profile = new Option<string?>("--profile") { Description = "Only this profile's trials (when the store holds several)." };
        var seed = new Option<long?>("--seed") { Description = "Only this seed's trials. Default: the store's seed, or where it holds several, the one with the most finals (named in the output)." };
        var venn = new Option<string[]>("--venn") { Description = "Methods of the Venn diagrams (3, then a 4th for the UpSet chart); default lora,rand_h_adapter,ssf.", AllowMultipleArgumentsPerToken = true };
        var robust = new Option<string[]>("--robustness") { Description = "Methods to fine-tune from the zero-shot head for the WiSE robustness curves (Figure 1c).", AllowMultipleArgumentsPerToken = true };
        var cmd = new Command("analyze", "Agreement, confident-set Venns, ensembles, ranks, Figure 1a, the paper beside ours, and optional WiSE robustness curves of a store.")
            { dir, outDir, profile, seed, venn, robust };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var vennList = Cli.Split(r.GetValue(venn));
            StoreReport.Run(new StoreReportOptions
            {
                StoreDir = r.GetValue(dir) is string d ? Path.GetFullPath(d) : null, OutDir = Path.GetFullPath(r.GetValue(outDir)!), Profile = r.GetValue(profile), Seed = r.GetValue(seed),
                VennMethods = vennList.Count > 0 ? vennList : null, RobustnessMethods = Cli.Split(r.GetValue(robust)),
            });
            return 0;
        }).Result);
        return cmd;
    }
}
