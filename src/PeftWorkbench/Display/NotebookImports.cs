namespace PeftWorkbench.Display;

/// <summary>The namespaces every notebook cell sees without a using, in both kernels: ours passes them to Roslyn, the
/// .NET Interactive extension submits them as using directives (<see cref="UsingDirectives"/>). TorchSharp.torch is a
/// static class: `using static`.</summary>
public static class NotebookImports
{
    public static IReadOnlyList<string> Namespaces { get; } = new[]
    {
        "System", "System.IO", "System.Linq", "System.Text", "System.Collections.Generic", "System.Threading", "System.Threading.Tasks",
        "System.Diagnostics", "TorchSharp", "TorchSharp.torch", "Microsoft.Data.Analysis", "XPlot.Plotly",
    }.Concat(typeof(Workbench).Assembly.GetExportedTypes().Select(t => t.Namespace).OfType<string>()
        .Where(n => n.StartsWith("PeftWorkbench", StringComparison.Ordinal)).Distinct().Order(StringComparer.Ordinal)).ToArray();

    public static string UsingDirectives =>
        string.Join("\n", Namespaces.Select(n => n == "TorchSharp.torch" ? $"using static {n};" : $"using {n};"));
}
