using System.Diagnostics;
using System.Net.Sockets;
using PeftWorkbench.Checkpoints;
using PeftWorkbench.Fuzz;
using PeftWorkbench.Tests.Data;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tests.Checkpoints;

/// <summary>
/// Issue 26 items 8 and 10: paths that name something other than a regular file. A write that renames over its target
/// must refuse a FIFO, a socket, a device node, a directory or a link to one (and leave it as it was); a read of a
/// checkpoint or a budgets file must refuse a FIFO at once instead of blocking on it until a writer comes.
/// </summary>
public class SpecialFileFuzzTests
{
    /// <summary>The file type as stat(1) names it ("fifo", "socket", "character special file", ...).</summary>
    static string Stat(string path)
    {
        var psi = new ProcessStartInfo("stat", new[] { "-c", "%F", path }) { RedirectStandardOutput = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return o;
    }

    static bool Sh(string command)
    {
        using var p = Process.Start(new ProcessStartInfo("sh", new[] { "-c", command }) { UseShellExecute = false, RedirectStandardError = true })!;
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0;
    }

    /// <summary>Special files to aim at, by kind; a device node only where mknod is allowed (root).</summary>
    static List<(string Kind, string Path, IDisposable? Keep)> Specials(string dir)
    {
        var list = new List<(string, string, IDisposable?)>();
        var fifo = Path.Combine(dir, "fifo");
        Assert.True(Sh($"mkfifo '{fifo}'"));
        list.Add(("FIFO", fifo, null));
        var socketPath = Path.Combine(dir, "socket");
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(socketPath));
        list.Add(("socket", socketPath, socket));
        var device = Path.Combine(dir, "null-device");
        if (Sh($"mknod '{device}' c 1 3")) list.Add(("character device", device, null));
        list.Add(("empty directory", Directory.CreateDirectory(Path.Combine(dir, "empty-dir")).FullName, null));
        var link = Path.Combine(dir, "link-to-fifo");
        File.CreateSymbolicLink(link, fifo);
        list.Add(("link to a FIFO", link, null));
        return list;
    }

    [Fact]
    public void WritesNeverReplaceASpecialFile()
    {
        using var dir = new TempDir();
        var outcomes = new Outcomes();
        var failures = new List<string>();
        var specials = Specials(dir.Path);
        try
        {
            foreach (var (kind, path, _) in specials)
                foreach (var (writer, write) in new (string, Action<string>)[]
                         {
                             ("AtomicFile", p => AtomicFile.Write(p, fs => fs.WriteByte(1))),
                             ("safetensors", p => VitWeights.Save(TinyData.Vit(), p)),
                             (".pth export", p => VitWeights.Save(TinyData.Vit(), p, "pth")),
                         })
                {
                    var type = Stat(path);
                    try
                    {
                        write(path);
                        if (Stat(path) != type) { outcomes.Injection++; failures.Add($"{writer} replaced the {kind} {path} (now a {Stat(path)})"); }
                        else { outcomes.SilentWrong++; failures.Add($"{writer} on the {kind}: no error"); }
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        if (Stat(path) != type) { outcomes.Injection++; failures.Add($"{writer} replaced the {kind} and then failed: {e.Message}"); }
                        else if (!e.Message.Contains(path) || e.Message.Contains('\n')) { outcomes.Crash++; failures.Add($"{writer} on the {kind}: unclear error: {e.Message}"); }
                        else outcomes.Clean++;
                    }
                    catch (Exception e) { outcomes.Crash++; failures.Add($"{writer} on the {kind}: {e.GetType().Name}: {e.Message}"); }
                    if (Directory.GetFiles(dir.Path, "*.tmp", SearchOption.AllDirectories).Length > 0)
                    { outcomes.SilentWrong++; failures.Add($"{writer} on the {kind} left a temp file"); }
                }
        }
        finally { foreach (var s in specials) s.Keep?.Dispose(); }
        FuzzTable.Record("files", "writes aimed at a FIFO, socket, device, directory, link", outcomes, "26.8");
        Assert.True(failures.Count == 0, outcomes + "\n" + string.Join("\n", failures));
    }

    /// <summary>Runs <paramref name="read"/> on a FIFO: a clear error naming it is clean; still blocked after a generous
    /// bound is a hang (then a writer is opened and closed, so the reader sees the end and the test goes on).</summary>
    static string ReadFifo(string fifo, Action read)
    {
        var task = Task.Run(read);
        if (Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(30))).Result != task)
        {
            using (new FileStream(fifo, FileMode.Open, FileAccess.Write)) { }
            Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(30))).Wait();
            return "hang";
        }
        try { task.Wait(); return "silent-wrong: read a FIFO without an error"; }
        catch (AggregateException a) when (a.InnerException is IOException e)
        {
            return e.Message.Contains(fifo) && !e.Message.Contains('\n') ? "clean" : "crash: unclear: " + e.Message;
        }
        catch (AggregateException a) { return $"crash: {a.InnerException!.GetType().Name}: {a.InnerException.Message}"; }
    }

    [Fact]
    public void ReadsRefuseAFifoInsteadOfBlocking()
    {
        using var dir = new TempDir();
        var outcomes = new Outcomes();
        var failures = new List<string>();
        void Count(string what, string verdict)
        {
            switch (verdict.Split(':')[0])
            {
                case "clean": outcomes.Clean++; return;
                case "hang": outcomes.Hang++; break;
                case "silent-wrong": outcomes.SilentWrong++; break;
                default: outcomes.Crash++; break;
            }
            failures.Add($"{what}: {verdict}");
        }
        var fifo = dir.File("ckpt.safetensors");
        Assert.True(Sh($"mkfifo '{fifo}'"));
        Count("VitWeights.Load", ReadFifo(fifo, () => VitWeights.Load(TinyData.Vit(), fifo)));
        Count("SafetensorsFile.Open", ReadFifo(fifo, () => SafetensorsFile.Open(fifo)));

        var store = Directory.CreateDirectory(dir.File("store")).FullName;
        var budgets = Path.Combine(store, "budgets.json");
        Assert.True(Sh($"mkfifo '{budgets}'"));
        Count("budgets.json", ReadFifo(budgets, () => new ResultsStore(store).CheckBudget(ProtocolOptions.Vtab1k("smoke"), "toy-3")));
        FuzzTable.Record("files", "checkpoint and budgets.json as a FIFO", outcomes, "26.10");
        Assert.True(failures.Count == 0, outcomes + "\n" + string.Join("\n", failures));
    }
}
