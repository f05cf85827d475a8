using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using PeftWorkbench.Kernel.Notebooks;
using Xunit.Abstractions;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>The notebooks as a user meets them: Debian's Jupyter Notebook 6.4 serves copies of notebooks/ on loopback with
/// a token, PEFT_PROFILE=smoke in its environment, and headless Chromium (driven by puppeteer-core, FrontEndDriver.js)
/// runs them on both kernels. The server sees only the kernelspecs this test writes: ours for the build under test,
/// and .NET Interactive's as environment/setup.d/interactive.sh installed it.</summary>
public class FrontEndTests(ITestOutputHelper output)
{
    /// <summary>Every notebook in notebooks/ (smoke profile); PEFT_FRONTEND_NOTEBOOKS (file names, comma-separated) runs
    /// a few, e.g. to take screenshots of some with PEFT_FRONTEND_SHOTS=DIR.</summary>
    static string[] Notebooks => Environment.GetEnvironmentVariable("PEFT_FRONTEND_NOTEBOOKS") is { Length: > 0 } some
        ? some.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        : Directory.GetFiles(Path.Combine(Tools.RepoRoot, "notebooks"), "*.ipynb").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
    const string Ours = "peft-workbench";

    [LinuxFact]
    public void RunAllOnBothKernelsShowsNoErrorAndDrawsEveryChartAndAnInterruptKeepsOurKernel()
    {
        var tools = FrontEndTools.Find();
        using var temp = new TempDir();
        var jupyter = Path.Combine(temp.Path, "jupyter");
        var install = Tools.Run(Tools.Dotnet, new[] { Tools.Peft, "kernel", "install", "--jupyter-path", jupyter });
        Assert.True(install.Code == 0, install.Stderr);
        CopyDir(Path.GetDirectoryName(tools.DotNetKernelspec)!, Path.Combine(jupyter, "kernels", JupyterClientRunner.DotNetInteractiveKernel));

        // One folder per kernel, each notebook's kernelspec set to it (the notebooks name .NET Interactive's), and a
        // NuGet.config naming the local feed by its full path (the repo's names it relative to notebooks/).
        var served = Path.Combine(temp.Path, "notebooks");
        var jobs = new JsonArray();
        var notebooks = Notebooks;
        foreach (var (kernel, folder) in new[] { (Ours, "workbench"), (JupyterClientRunner.DotNetInteractiveKernel, "dotnet-interactive") })
        {
            var dir = Path.Combine(served, folder); // not ".net-csharp": the server hides dot folders
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "NuGet.config"),
                $"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration><packageSources><add key=\"{LocalFeed.SourceName}\" value=\"{LocalFeed.Folder()}\" /></packageSources></configuration>\n");
            foreach (var name in notebooks)
            {
                var nb = NotebookRunner.Load(Path.Combine(Tools.RepoRoot, "notebooks", name));
                var spec = nb["metadata"]!["kernelspec"]!.AsObject();
                spec["name"] = kernel;
                spec["display_name"] = kernel == Ours ? "C# (PeftWorkbench)" : ".NET (C#)";
                File.WriteAllText(Path.Combine(dir, name), nb.ToJsonString());
                var job = new JsonObject { ["path"] = $"{folder}/{name}", ["kernel"] = kernel };
                if (kernel == Ours && name == notebooks[^1]) job["interrupt"] = true;
                if (Environment.GetEnvironmentVariable("PEFT_FRONTEND_SHOTS") is { Length: > 0 } shots)
                    job["screenshot"] = Path.Combine(Path.GetFullPath(shots), $"{folder}-{Path.GetFileNameWithoutExtension(name)}.png");
                jobs.Add(job);
            }
        }

        using var server = JupyterServer.Start(tools, served, jupyter, temp.Path);
        var run = Tools.Run("node", new[] { tools.Driver, tools.PuppeteerCore, tools.Chromium, server.BaseUrl, server.Token, Path.Combine(temp.Path, "chromium"), jobs.ToJsonString() },
            cwd: temp.Path, timeoutSeconds: 900);
        Assert.True(run.Code == 0, $"the browser driver failed ({run.Code}):\n{run.Stderr}\n{run.Stdout}\nthe server's log:\n{server.Log}");
        var results = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(jobs.Count, results.Count);

        foreach (var r in results)
        {
            var path = (string)r["path"]!;
            output.WriteLine($"{path}: open {r["openSeconds"]} s, first cell {r["firstCellSeconds"]} s, Run All {r["runAllSeconds"]} s, " +
                $"{r["codeCells"]} code cells, {r["chartsWithSvg"]}/{r["charts"]} charts drawn" + (r["interrupt"] is { } i ? $", interrupt stopped the cell in {i["stopSeconds"]} s" : ""));
            Assert.True(r["errors"]!.AsArray().Count == 0, $"{path}: error output {r["errors"]!.ToJsonString()}");
            Assert.True(r["unrun"]!.AsArray().Count == 0, $"{path}: code cells without an execution count {r["unrun"]!.ToJsonString()}");
            // Every chart output became a chart div with plotly's svg in it (every notebook shows at least one).
            Assert.True((int)r["chartOutputs"]! >= 1, $"{path}: no chart output");
            Assert.Equal((int)r["chartOutputs"]!, (int)r["charts"]!);
            Assert.Equal((int)r["charts"]!, (int)r["chartsWithSvg"]!);
        }
        var interrupted = Assert.Single(results, r => r["interrupt"] is not null)["interrupt"]!;
        Assert.Contains("Cancel", (string)interrupted["stoppedOutput"]!); // the loop ended by its cancellation, not by a dead kernel
        Assert.Equal("42", ((string)interrupted["stateAfter"]!).Trim()); // same kernel, state kept
        server.AssertStopsWithEveryChild();
    }

    static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }
}

/// <summary>A fact that runs only on Linux: the front end it drives is Debian's (jupyter-notebook, chromium).</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "needs Debian's jupyter-notebook and chromium packages (Linux only)";
    }
}

/// <summary>What the front-end test needs, found where environment/setup.sh installs it; a missing piece fails the test
/// with what installs it.</summary>
sealed record FrontEndTools(string Notebook, string Chromium, string PuppeteerCore, string Driver, string DotNetKernelspec)
{
    public static FrontEndTools Find()
    {
        const string notebook = "/usr/bin/jupyter-notebook", chromium = "/usr/bin/chromium";
        var puppeteer = Path.Combine(Workbench.DataDir, "frontend", "node_modules", "puppeteer-core");
        var spec = new[] { Environment.GetEnvironmentVariable("JUPYTER_DATA_DIR"), Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share", "jupyter") }
            .Concat((Environment.GetEnvironmentVariable("JUPYTER_PATH") ?? "").Split(':'))
            .Where(d => !string.IsNullOrEmpty(d)).Select(d => Path.Combine(d!, "kernels", JupyterClientRunner.DotNetInteractiveKernel, "kernel.json")).FirstOrDefault(File.Exists);
        var missing = new List<string>();
        if (!File.Exists(notebook)) missing.Add($"{notebook} (Debian package jupyter-notebook, environment/apt-packages.txt)");
        if (!File.Exists(chromium)) missing.Add($"{chromium} (Debian package chromium)");
        if (Tools.Run("sh", new[] { "-c", "command -v node" }).Code != 0) missing.Add("node (Node.js; environment/setup.sh installs npm and its node)");
        if (!File.Exists(Path.Combine(puppeteer, "package.json"))) missing.Add($"{puppeteer} (environment/setup.d/frontend.sh)");
        if (spec is null) missing.Add($"the {JupyterClientRunner.DotNetInteractiveKernel} kernelspec (environment/setup.d/interactive.sh)");
        if (LocalFeed.Problem() is { } feed) missing.Add(feed);
        Assert.True(missing.Count == 0, "the front-end test needs: " + string.Join("; ", missing));
        return new FrontEndTools(notebook, chromium, puppeteer, Path.Combine(Tools.RepoRoot, "tests", "PeftWorkbench.Kernel.Tests", "FrontEndDriver.js"), spec!);
    }
}

/// <summary>jupyter-notebook on a free loopback port with a random token, its Jupyter dirs in <c>home</c> (no user config
/// or kernelspec leaks in), PEFT_PROFILE=smoke. Disposing stops it by its PID, kernels and all.</summary>
sealed class JupyterServer : IDisposable
{
    readonly Process process;
    public string BaseUrl { get; }
    public string Token { get; }

    JupyterServer(Process process, int port, string token) { this.process = process; BaseUrl = $"http://127.0.0.1:{port}"; Token = token; }

    public static JupyterServer Start(FrontEndTools tools, string notebookDir, string jupyterPath, string home)
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var psi = new ProcessStartInfo(tools.Notebook) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = notebookDir };
        foreach (var a in new[] { "--no-browser", "--ip=127.0.0.1", $"--port={port}", "--port-retries=0", $"--notebook-dir={notebookDir}", "--NotebookApp.open_browser=False", "--allow-root" })
            psi.ArgumentList.Add(a);
        // --allow-root: CI and these machines run tests as root; the server only listens on loopback with a token.
        var token = Guid.NewGuid().ToString("N");
        psi.Environment["JUPYTER_TOKEN"] = token; // not on the command line, where every user could read it
        psi.Environment["JUPYTER_PATH"] = jupyterPath;
        psi.Environment["JUPYTER_DATA_DIR"] = Path.Combine(home, "jupyter-data");
        psi.Environment["JUPYTER_RUNTIME_DIR"] = Path.Combine(home, "jupyter-runtime");
        psi.Environment["JUPYTER_CONFIG_DIR"] = Path.Combine(home, "jupyter-config");
        psi.Environment["PEFT_PROFILE"] = "smoke";
        psi.Environment["PEFT_CLI"] = $"{Tools.Dotnet} {Tools.Peft}"; // workers, where a notebook starts them, are this build's
        return new JupyterServer(Process.Start(psi)!, port, token).WaitReady();
    }

    readonly System.Text.StringBuilder log = new();

    /// <summary>What the server printed so far (its log and its kernels' stderr).</summary>
    public string Log { get { lock (log) return log.ToString(); } }

    JupyterServer WaitReady()
    {
        process.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited) break;
            try
            {
                if (http.GetAsync($"{BaseUrl}/api/status?token={Token}").Result.StatusCode == HttpStatusCode.OK) return this;
            }
            catch (AggregateException) { } // not listening yet
            Thread.Sleep(250);
        }
        Dispose();
        lock (log) throw new InvalidOperationException($"jupyter-notebook did not answer on {BaseUrl}:\n{log}");
    }

    /// <summary>The server's process tree now (kernels are its children, workers theirs).</summary>
    List<int> Descendants()
    {
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.GetDirectories("/proc"))
            if (int.TryParse(Path.GetFileName(dir), out var pid))
                try
                {
                    var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    parents[pid] = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                }
                catch (IOException) { } // gone meanwhile
                catch (UnauthorizedAccessException) { }
        var found = new List<int>();
        var frontier = new Queue<int>(new[] { process.Id });
        while (frontier.Count > 0)
        {
            var p = frontier.Dequeue();
            foreach (var (child, parent) in parents) if (parent == p) { found.Add(child); frontier.Enqueue(child); }
        }
        return found;
    }

    /// <summary>Asks the server to shut down (POST /api/shutdown ends its kernels), then checks that it and every process
    /// it started are gone within 20 s.</summary>
    public void AssertStopsWithEveryChild()
    {
        var children = Descendants();
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
            http.PostAsync($"{BaseUrl}/api/shutdown?token={Token}", null).Wait();
        Assert.True(process.WaitForExit(20_000), "jupyter-notebook still runs 20 s after /api/shutdown");
        var deadline = DateTime.UtcNow.AddSeconds(20);
        List<int> left;
        while ((left = children.Where(Alive).ToList()).Count > 0 && DateTime.UtcNow < deadline) Thread.Sleep(200);
        foreach (var pid in left) try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { }
        Assert.True(left.Count == 0, "processes the server started outlived it: " + string.Join(", ", left.Select(p => $"{p} ({Comm(p)})")));
    }

    static bool Alive(int pid) => File.Exists($"/proc/{pid}/stat") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ");
    static string Comm(int pid) { try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); } catch (IOException) { return "?"; } }

    public void Dispose()
    {
        try
        {
            if (!process.HasExited) { process.Kill(entireProcessTree: true); process.WaitForExit(10_000); }
        }
        catch (InvalidOperationException) { } // never started or already reaped
        process.Dispose();
    }
}
