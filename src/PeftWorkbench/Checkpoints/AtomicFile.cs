using System.Text;

namespace PeftWorkbench.Checkpoints;

/// <summary>
/// Writes a file so that a reader only ever sees the old file or the complete new one: the bytes go to a temp
/// file beside it (same folder, so the rename stays on one file system; a unique name, so two writers never share
/// one), are flushed to disk, optionally checked, and only then renamed over the target. A writer killed part-way
/// leaves the old file intact (and a stray temp file); an existing larger file is replaced whole, never
/// overwritten in place. The target must be absent or a regular file: a rename would replace a device node, a
/// FIFO, a socket or (for an empty one) a directory, so those are refused before anything is written.
/// The one temp-then-rename writer in the workbench: every such write goes through here.
/// </summary>
public static class AtomicFile
{
    /// <param name="write">Writes the content to the (fresh, empty) temp file's stream.</param>
    /// <param name="verify">Reads the finished temp file back (given its path) and throws if it is wrong, the
    /// target then left as it was; or finishes it in place (e.g. patches it) before it is renamed.</param>
    /// <param name="mode">Unix permissions of the new file (e.g. executable scripts); default: the umask's.</param>
    public static void Write(string path, Action<FileStream> write, Action<string>? verify = null, UnixFileMode? mode = null)
    {
        var full = Path.GetFullPath(path);
        RegularFile.RequireReplaceable(full);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            verify?.Invoke(tmp);
            if (mode is { } m && !OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, m);
            RegularFile.RequireReplaceable(full); // again: something may have appeared there while we wrote
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 without a byte-order mark.</summary>
    public static void WriteText(string path, string text, UnixFileMode? mode = null) =>
        Write(path, fs => { var bytes = new UTF8Encoding(false).GetBytes(text); fs.Write(bytes); }, mode: mode);
}
