//! Reading into the spare capacity of a `BytesMut`: monoio's owned-buffer reads fill from the
//! start of the buffer they are given, so the helpers hand the kernel the tail slice.

use std::io;

use bytes::BytesMut;
use monoio::io::AsyncReadRent;

/// Reads more bytes into the spare capacity of `buf` (monoio reads fill from the start of the
/// buffer it is given, so hand it the tail slice). Used for HTTP heads and bodies.
pub async fn read_more<R: AsyncReadRent>(
    r: &mut R,
    buf: BytesMut,
) -> (io::Result<usize>, BytesMut) {
    read_into(r, buf, 16 * 1024).await
}

/// Like `read_more`, offering the kernel at least `want / 2` and growing by `want` when less
/// is spare. MQTT connections pass an adaptive `want`: an idle connection keeps a small buffer
/// parked in the kernel (its read is always pending), a busy one a large one.
pub async fn read_into<R: AsyncReadRent>(
    r: &mut R,
    mut buf: BytesMut,
    want: usize,
) -> (io::Result<usize>, BytesMut) {
    if buf.capacity() - buf.len() < want / 2 {
        buf.reserve(want);
    }
    let len = buf.len();
    let (res, slice) = r.read(monoio::buf::IoBufMut::slice_mut(buf, len..)).await;
    (res, slice.into_inner())
}
