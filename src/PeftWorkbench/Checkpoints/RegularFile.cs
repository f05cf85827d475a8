using System.Runtime.InteropServices;

namespace PeftWorkbench.Checkpoints;

/// <summary>
/// What kind of file a path names, asked before it is opened or replaced. File.Exists is true for a FIFO, a device
/// or a socket: opening a FIFO for reading blocks until a writer comes (a run that hangs), and renaming over a
/// device node replaces it with a regular file. .NET has no public call for the file type, so on Linux this asks
/// statx(2) for it (its layout is the same on every architecture); elsewhere every existing non-directory counts as
/// a regular file, as before.
/// </summary>
public static class RegularFile
{
    /// <summary>"regular file", "directory", "FIFO", "character device", "block device", "socket", "symbolic link",
    /// or null when nothing is there. Symbolic links are followed (a link to a FIFO is a FIFO).</summary>
    public static string? Kind(string path)
    {
        if (OperatingSystem.IsLinux())
        {
            var buffer = new byte[256];
            try
            {
                if (Statx(AtCwd, path, 0, StatxType, buffer) == 0)
                    return (BitConverter.ToUInt16(buffer, 28) & 0xF000) switch
                    {
                        0x8000 => "regular file", 0x4000 => "directory", 0x1000 => "FIFO", 0x2000 => "character device",
                        0x6000 => "block device", 0xC000 => "socket", 0xA000 => "symbolic link", _ => "special file",
                    };
                // Absent (or a dangling link, or a folder on the way we may not search): as File.Exists sees it.
                return Directory.Exists(path) ? "directory" : File.Exists(path) ? "regular file" : null;
            }
            catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { }
        }
        return Directory.Exists(path) ? "directory" : File.Exists(path) ? "regular file" : null;
    }

    /// <summary>Throws unless <paramref name="path"/> is a regular file (or a link to one): "<paramref name="what"/>
    /// PATH is a FIFO, not a regular file", before anything opens it. A missing file throws FileNotFoundException.</summary>
    public static void RequireForReading(string path, string what)
    {
        switch (Kind(path))
        {
            case "regular file": return;
            case null: throw new FileNotFoundException($"{what} not found: {path}", path);
            case var kind: throw new IOException($"{what} {path} is a {kind}, not a regular file; give the path of a file.");
        }
    }

    /// <summary>Throws unless <paramref name="path"/> is absent or a regular file: a write that renames over it must
    /// never replace a device, FIFO, socket or directory.</summary>
    public static void RequireReplaceable(string path)
    {
        if (Kind(path) is { } kind and not "regular file")
            throw new IOException($"{path} is a {kind}, not a regular file: refusing to replace it; write to a file path instead.");
    }

    const int AtCwd = -100;
    const uint StatxType = 0x1;

    // A blittable byte[] is pinned and passed as a pointer, so the kernel's answer lands in it.
    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    static extern int Statx(int dirfd, string path, int flags, uint mask, byte[] buffer);
}
