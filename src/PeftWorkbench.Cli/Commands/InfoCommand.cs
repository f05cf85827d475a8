using System.CommandLine;
using PeftWorkbench;

namespace PeftWorkbench.Cli.Commands;

public static class InfoCommand
{
    public static Command Create()
    {
        var cmd = new Command("info", "Versions, threads, device, and where data and checkpoints are looked for.");
        cmd.SetAction(_ => Cli.Guard(() =>
        {
            var rows = Workbench.Info();
            int w = rows.Max(r => r.Key.Length);
            foreach (var (k, v) in rows) Console.WriteLine($"{k.PadRight(w)}  {v}");
            return 0;
        }));
        return cmd;
    }
}
