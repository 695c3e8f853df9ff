pub fn tcp_segment() {}
pub struct Skip;
pub struct TcpSegment;
