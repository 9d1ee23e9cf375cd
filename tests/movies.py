"""Small real movies for tests, encoded with PyAV's FFmpeg: solid-colour H.264 frames, an AAC tone."""

import numpy as np


def encode_colours(out, colours, size, rate, b_frames=0):
    """Add an H.264 stream to the open container ``out`` whose frame i is filled with colours[i] (RGB)."""
    import av

    stream = out.add_stream("libx264", rate=rate)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.options = {"bf": str(b_frames), "g": "12", "preset": "ultrafast" if not b_frames else "fast"}
    for colour in colours:
        pixels = np.zeros((size[1], size[0], 3), np.uint8)
        pixels[:] = colour
        for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
            out.mux(packet)
    return stream


def flush(out, stream) -> None:
    for packet in stream.encode():
        out.mux(packet)


def encode_tone(out, seconds: float, rate: int = 48000) -> None:
    """Add an AAC stream to ``out``: a 440 Hz tone of ``seconds``."""
    import av

    audio = out.add_stream("aac", rate=rate)
    samples = int(rate * seconds)
    tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / rate)).astype(np.float32)
    for start in range(0, samples, 1024):
        frame = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in audio.encode(frame):
            out.mux(packet)
    flush(out, audio)
