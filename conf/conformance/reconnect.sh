#!/bin/sh
echo "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure."
