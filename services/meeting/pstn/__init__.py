"""The PSTN gateway (MT-08): dial-in phone calls, plain G.711 on the phone side, bridged into a
conference as an SRTP participant whose leg is marked unencrypted."""
