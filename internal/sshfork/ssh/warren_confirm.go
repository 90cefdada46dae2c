package ssh

// warren: the channel-open confirmation's type-specific data, which x/crypto
// neither sends nor returns. The Dev Tunnels V2 relay protocol needs it: a
// forwarded-tcpip confirmation carries PortRelayConnectResponseMessage's
// trailing isE2EEncryptionEnabled boolean, and dev-tunnels-ssh clients fail
// to read a confirmation without it. Kept in this file, apart from the
// upstream code paths it mirrors (channel.Accept, mux.openChannel).

import (
	"errors"
	"fmt"
)

// errNotForkChannel is returned for a NewChannel or Conn that this package
// did not make (a test double, a wrapper).
var errNotForkChannel = errors.New("ssh: not a channel or connection of this package")

// AcceptWithData accepts nc as NewChannel.Accept does, with data appended
// to the SSH_MSG_CHANNEL_OPEN_CONFIRMATION after its standard fields. The
// channel then drops its ExtraData (which holds the open message's packet)
// instead of keeping it for its life: read ExtraData before.
func AcceptWithData(nc NewChannel, data []byte) (Channel, <-chan *Request, error) {
	ch, ok := nc.(*channel)
	if !ok {
		return nil, nil, errNotForkChannel
	}
	if ch.decided {
		return nil, nil, errDecidedAlready
	}
	// As Accept: maxIncomingPayload was set by newChannel, and myWindow is
	// read under its lock (the peer may already be sending data).
	ch.windowMu.Lock()
	myWindow := ch.myWindow
	ch.windowMu.Unlock()
	confirm := channelOpenConfirmMsg{
		PeersID:          ch.remoteId,
		MyID:             ch.localId,
		MyWindow:         myWindow,
		MaxPacketSize:    ch.maxIncomingPayload,
		TypeSpecificData: data,
	}
	ch.decided = true
	ch.extraData = nil
	if err := ch.sendMessage(confirm); err != nil {
		return nil, nil, err
	}
	return ch, ch.incomingRequests, nil
}

// OpenChannelWithConfirm opens a channel on c as Conn.OpenChannel does and
// also returns the type-specific data the peer put after the confirmation's
// standard fields (nil when there was none).
func OpenChannelWithConfirm(c Conn, chanType string, extra []byte) (Channel, <-chan *Request, []byte, error) {
	m := muxOf(c)
	if m == nil {
		return nil, nil, nil, errNotForkChannel
	}
	// Sets maxIncomingPayload; an outbound channel has no ExtraData to keep.
	ch := m.newChannel(chanType, channelOutbound, nil)
	open := channelOpenMsg{
		ChanType:         chanType,
		PeersWindow:      ch.myWindow,
		MaxPacketSize:    ch.maxIncomingPayload,
		TypeSpecificData: extra,
		PeersID:          ch.localId,
	}
	if err := m.sendMessage(open); err != nil {
		return nil, nil, nil, err
	}
	switch msg := (<-ch.msg).(type) {
	case *channelOpenConfirmMsg:
		return ch, ch.incomingRequests, msg.TypeSpecificData, nil
	case *channelOpenFailureMsg:
		return nil, nil, nil, &OpenChannelError{msg.Reason, msg.Message}
	default:
		return nil, nil, nil, fmt.Errorf("ssh: unexpected packet in response to channel open: %T", msg)
	}
}

// muxOf finds the connection protocol under c: a *connection, or the
// ServerConn or Client wrapping one.
func muxOf(c Conn) *mux {
	for {
		switch v := c.(type) {
		case *connection:
			return v.mux
		case *ServerConn:
			c = v.Conn
		case *Client:
			c = v.Conn
		default:
			return nil
		}
	}
}
