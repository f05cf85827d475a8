using System.Diagnostics;
using System.Text.Json.Nodes;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>External programs the integration tests drive. CI installs them (environment/apt-packages.txt): a missing
/// one fails the test with the package to install, rather than skipping it.</summary>
static class Tools
{
    public const string Python = "/usr/bin/python3"; // Debian's, where python3-nbclient installs
    public static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h) ? h : "dotnet";
    public static string Peft => Path.Combine(AppContext.BaseDirectory, "peft.dll");

    /// <summary>The repository's root (the folder with PeftWorkbench.sln above the test output).</summary>
    public static string RepoRoot
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "PeftWorkbench.sln"))) return d.FullName;
            throw new InvalidOperationException("PeftWorkbench.sln not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>The DOM of an HTML page after Debian's headless Chromium ran its scripts with the network off.</summary>
    public static string RenderOffline(string htmlPath)
    {
        using var temp = new TempDir();
        var dom = Run("chromium", new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", $"--user-data-dir={System.IO.Path.Combine(temp.Path, "chromium")}",
            "--dump-dom", new Uri(htmlPath).AbsoluteUri,
        }, timeoutSeconds: 120);
        Assert.True(dom.Code == 0, dom.Stderr);
        return dom.Stdout;
    }

    public static (int Code, string Stdout, string Stderr) Run(string file, IEnumerable<string> args, IDictionary<string, string>? env = null, string? cwd = null, int timeoutSeconds = 120)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (cwd is not null) psi.WorkingDirectory = cwd;
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"cannot run {file}: {e.Message} (see environment/apt-packages.txt)", e); }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeoutSeconds * 1000)) { p.Kill(entireProcessTree: true); throw new TimeoutException($"{file} {string.Join(' ', args)} ran over {timeoutSeconds} s"); }
            return (p.ExitCode, stdout.Result, stderr.Result);
        }
    }


    /// <summary>A notebook with one code cell per source (tags optional: "tag:code").</summary>
    public static string WriteNotebook(string path, params string[] sources)
    {
        var cells = new JsonArray();
        foreach (var s in sources)
        {
            // "parameters:", "finding:" or "verdict:" before the source tags the cell.
            var tag = new[] { "parameters", "finding", "verdict" }.FirstOrDefault(t => s.StartsWith(t + ":", StringComparison.Ordinal));
            cells.Add(new JsonObject
            {
                ["cell_type"] = "code",
                ["metadata"] = tag is not null ? new JsonObject { ["tags"] = new JsonArray(tag) } : new JsonObject(),
                ["execution_count"] = null,
                ["outputs"] = new JsonArray(),
                ["source"] = tag is not null ? s[(tag.Length + 1)..] : s,
            });
        }
        var nb = new JsonObject
        {
            ["cells"] = cells,
            ["metadata"] = new JsonObject { ["kernelspec"] = new JsonObject { ["name"] = "peft-workbench", ["display_name"] = "C# (PeftWorkbench)", ["language"] = "C#" } },
            ["nbformat"] = 4, ["nbformat_minor"] = 4,
        };
        File.WriteAllText(path, nb.ToJsonString());
        return path;
    }

    public static void AssertValidNotebook(string path)
    {
        var (code, _, err) = Run(Python, new[] { "-c", "import sys, nbformat; nb = nbformat.read(sys.argv[1], as_version=4); nbformat.validate(nb); assert nb.nbformat_minor >= 5", path });
        Assert.True(code == 0, "nbformat rejects " + path + ":\n" + err);
    }
}
