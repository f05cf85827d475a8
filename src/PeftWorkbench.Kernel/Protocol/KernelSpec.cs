using System.Text.Json;
using System.Text.Json.Nodes;
using PeftWorkbench.Kernel.Notebooks;

namespace PeftWorkbench.Kernel.Protocol;

/// <summary>Writes kernels/peft-workbench/kernel.json so Jupyter front ends can start this kernel.</summary>
public static class KernelSpec
{
    /// <summary>Where `jupyter kernelspec` looks: --user (~/.local/share/jupyter, or $JUPYTER_DATA_DIR), --prefix P
    /// (P/share/jupyter), or one JUPYTER_PATH entry (DIR).</summary>
    public static string KernelsDir(string? prefix, string? jupyterPath)
    {
        if (jupyterPath is not null) return Path.Combine(Path.GetFullPath(jupyterPath), "kernels");
        if (prefix is not null) return Path.Combine(Path.GetFullPath(prefix), "share", "jupyter", "kernels");
        var data = Environment.GetEnvironmentVariable("JUPYTER_DATA_DIR") is { Length: > 0 } d ? d
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share", "jupyter");
        return Path.Combine(data, "kernels");
    }

    /// <param name="argv">The command line that starts the kernel; must contain "{connection_file}".</param>
    public static string Install(string kernelsDir, IReadOnlyList<string> argv, string name = NotebookRunner.KernelName, IReadOnlyDictionary<string, string>? env = null)
    {
        if (!argv.Contains("{connection_file}")) throw new ArgumentException("The kernel's argv must contain {connection_file}.", nameof(argv));
        var dir = Path.Combine(kernelsDir, name);
        Directory.CreateDirectory(dir);
        var spec = new JsonObject
        {
            ["argv"] = new JsonArray(argv.Select(a => (JsonNode?)a).ToArray()),
            ["display_name"] = NotebookRunner.DisplayName,
            ["language"] = JupyterKernel.LanguageName,
            ["interrupt_mode"] = "message",
            ["metadata"] = new JsonObject { ["debugger"] = false },
        };
        if (env is { Count: > 0 })
        {
            var e = new JsonObject();
            foreach (var (k, v) in env) e[k] = v;
            spec["env"] = e;
        }
        var path = Path.Combine(dir, "kernel.json");
        PeftWorkbench.Checkpoints.AtomicFile.WriteText(path, spec.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return path;
    }
}
